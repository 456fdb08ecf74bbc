/*
 * --disk-usage <path>: the used and total bytes of the file system holding <path>, as seen inside
 * the sandbox ("<used> <total>\n"). The host asks the sandbox rather than resolving a path in
 * its mount namespace itself: the sandbox controls every symlink on that path, and an absolute
 * one would resolve against the host's root.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>

#include "common.h"

int disk_usage_main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s --disk-usage <path>\n", argv[0]);
    return 2;
  }
  struct statfs fs;
  if (statfs(argv[2], &fs) != 0) {
    perror("polydev: statfs");
    return 1;
  }
  unsigned long long block = (unsigned long long)fs.f_bsize;
  printf("%llu %llu\n", ((unsigned long long)fs.f_blocks - (unsigned long long)fs.f_bfree) * block,
         (unsigned long long)fs.f_blocks * block);
  return 0;
}
