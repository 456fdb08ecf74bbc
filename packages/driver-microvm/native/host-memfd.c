/*
 * polydev-memfd <file>: the host side of copy-on-write guest RAM (guest-ram.ts).
 *
 * Copies <file> (a boot snapshot's guest RAM, written by its template) into a new memfd,
 * skipping holes and zero pages, seals it against every change (write, grow, shrink, more
 * seals) and prints "ready <fd>". The server then opens /proc/<pid>/fd/<fd> for itself and
 * closes our stdin; we exit. Each QEMU gets that memfd as its fd 3 and maps it privately: its
 * guest reads the pages every sandbox of the snapshot shares and copies only those it writes.
 * The seals are why a memfd and not the file: QEMU must open its RAM file read-write even for
 * a private mapping, and a QEMU taken over by its guest could otherwise write into the pages
 * every later sandbox starts from.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1 << 20)
#define PAGE 4096

static int fail(const char *what) {
  fprintf(stderr, "polydev-memfd: %s: %m\n", what);
  return 1;
}

static int all_zero(const unsigned char *bytes, size_t length) {
  for (size_t i = 0; i < length; i++)
    if (bytes[i] != 0) return 0;
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) return fail("usage: polydev-memfd <file>");
  int source = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (source < 0) return fail(argv[1]);
  struct stat info;
  if (fstat(source, &info) != 0) return fail("fstat");
  int ram = memfd_create("polydev-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (ram < 0) return fail("memfd_create");
  if (ftruncate(ram, info.st_size) != 0) return fail("ftruncate");
  static unsigned char buffer[CHUNK];
  off_t position = 0;
  while (position < info.st_size) {
    off_t data = lseek(source, position, SEEK_DATA);
    if (data < 0) break; /* only a hole is left */
    off_t hole = lseek(source, data, SEEK_HOLE);
    if (hole < 0) return fail("SEEK_HOLE");
    for (off_t at = data; at < hole;) {
      size_t want = (size_t)(hole - at < CHUNK ? hole - at : CHUNK);
      ssize_t got = pread(source, buffer, want, at);
      if (got <= 0) return fail("read");
      for (ssize_t page = 0; page < got; page += PAGE) {
        size_t length = (size_t)(got - page < PAGE ? got - page : PAGE);
        if (all_zero(buffer + page, length)) continue;
        if (pwrite(ram, buffer + page, length, at + page) != (ssize_t)length) return fail("write");
      }
      at += got;
    }
    position = hole;
  }
  close(source);
  if (fcntl(ram, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
    return fail("F_ADD_SEALS");
  printf("ready %d\n", ram);
  fflush(stdout);
  char byte;
  while (read(STDIN_FILENO, &byte, 1) > 0) {
  }
  return 0;
}
