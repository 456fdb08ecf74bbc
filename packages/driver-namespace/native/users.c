/*
 * Who a command runs as, in a sandbox with users of its own (an image sandbox, whose init is
 * root inside its user namespace): the relay's child switches to the requested user right
 * before exec. Names are looked up in the sandbox's own /etc/passwd and /etc/group, read here
 * rather than through NSS: this binary is static and runs in any image, and the image's NSS
 * modules are not ours to load.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define MAX_GROUPS 64

/* Finds `name` (or, when numeric, its uid) in /etc/passwd; 0 when found. */
static int find_passwd(const char *name, uid_t *uid, gid_t *gid, char *user, size_t user_size, char *home,
                       size_t home_size) {
  char *end;
  long numeric = strtol(name, &end, 10);
  int by_uid = *name != '\0' && *end == '\0';
  FILE *file = fopen("/etc/passwd", "re");
  int found = -1;
  if (file) {
    char line[1024];
    while (found != 0 && fgets(line, sizeof line, file)) {
      char *fields[7] = {0};
      char *cursor = line;
      int count = 0;
      for (; count < 7 && cursor; count++) fields[count] = strsep(&cursor, ":\n");
      if (count < 6 || !fields[2] || !fields[3] || !fields[5]) continue;
      long entry_uid = strtol(fields[2], NULL, 10);
      if (by_uid ? entry_uid != numeric : strcmp(fields[0], name) != 0) continue;
      *uid = (uid_t)entry_uid;
      *gid = (gid_t)strtol(fields[3], NULL, 10);
      snprintf(user, user_size, "%s", fields[0]);
      snprintf(home, home_size, "%s", fields[5]);
      found = 0;
    }
    fclose(file);
  }
  if (found != 0 && strcmp(name, "root") == 0) {
    /* An image without /etc/passwd (distroless, scratch): root is uid 0 all the same. */
    *uid = 0;
    *gid = 0;
    snprintf(user, user_size, "root");
    snprintf(home, home_size, "/root");
    found = 0;
  }
  if (found != 0 && by_uid && numeric >= 0) {
    /* A uid without an entry, as on any machine: its own group, home /. */
    *uid = (uid_t)numeric;
    *gid = (gid_t)numeric;
    snprintf(user, user_size, "%ld", numeric);
    snprintf(home, home_size, "/");
    found = 0;
  }
  return found;
}

/* The supplementary groups listing `user`, plus its primary group. */
static int groups_of(const char *user, gid_t primary, gid_t *groups) {
  int count = 0;
  groups[count++] = primary;
  FILE *file = fopen("/etc/group", "re");
  if (!file) return count;
  char line[4096];
  while (count < MAX_GROUPS && fgets(line, sizeof line, file)) {
    char *cursor = line;
    char *name = strsep(&cursor, ":");
    char *password = strsep(&cursor, ":");
    char *gid_text = strsep(&cursor, ":");
    char *members = strsep(&cursor, "\n");
    (void)name;
    (void)password;
    if (!gid_text || !members) continue;
    for (char *member; (member = strsep(&members, ",")) != NULL;) {
      if (strcmp(member, user) == 0) {
        gid_t gid = (gid_t)strtol(gid_text, NULL, 10);
        if (gid != primary) groups[count++] = gid;
        break;
      }
    }
  }
  fclose(file);
  return count;
}

static char *env_entry(const char *key, const char *value) {
  size_t length = strlen(key) + strlen(value) + 2;
  char *entry = malloc(length);
  if (entry) snprintf(entry, length, "%s=%s", key, value);
  return entry;
}

int switch_user(const char *name, char ***envp, int terminal) {
  uid_t uid;
  gid_t gid;
  char user[256], home[1024];
  if (find_passwd(name, &uid, &gid, user, sizeof user, home, sizeof home) != 0) {
    dprintf(STDERR_FILENO, "polydev: there is no user %s in this sandbox\n", name);
    return -1;
  }
  if (geteuid() != 0) {
    /* A sandbox without root (the host view): only its own user exists. */
    if (uid == geteuid()) return 0;
    dprintf(STDERR_FILENO, "polydev: cannot run as %s: this sandbox has no root (start it from an image)\n",
            name);
    return -1;
  }
  if (terminal >= 0) {
    /* Like login: the terminal becomes the user's, or it could not even write to it. */
    if (fchown(terminal, uid, (gid_t)-1) != 0 || fchmod(terminal, 0620) != 0) return -1;
  }
  gid_t groups[MAX_GROUPS];
  int count = groups_of(user, gid, groups);
  if (setgroups((size_t)count, groups) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
    dprintf(STDERR_FILENO, "polydev: cannot switch to user %s: %s\n", name, strerror(errno));
    return -1;
  }
  /* HOME, USER and LOGNAME follow the user; everything else of the request stays. */
  size_t length = 0;
  while ((*envp)[length]) length++;
  char **replaced = calloc(length + 4, sizeof *replaced);
  if (!replaced) return -1;
  size_t kept = 0;
  for (size_t i = 0; i < length; i++) {
    const char *entry = (*envp)[i];
    if (strncmp(entry, "HOME=", 5) == 0 || strncmp(entry, "USER=", 5) == 0 || strncmp(entry, "LOGNAME=", 8) == 0)
      continue;
    replaced[kept++] = (*envp)[i];
  }
  replaced[kept++] = env_entry("HOME", home);
  replaced[kept++] = env_entry("USER", user);
  replaced[kept++] = env_entry("LOGNAME", user);
  replaced[kept] = NULL;
  *envp = replaced;
  return 0;
}
