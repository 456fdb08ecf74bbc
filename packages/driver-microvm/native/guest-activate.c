/*
 * guest-run --activate: a restored boot snapshot becomes one sandbox (see guest-run.c's
 * header). Plain system calls in one process (only the sandbox's pid 1 is forked): under TCG
 * every fork and exec of a busybox command cost tens of milliseconds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>
#include "guest-run.h"

#define CGROUP "/sys/fs/cgroup/sandbox/"

static int parse_count(const char *text, unsigned long long *value) {
  char *end = NULL;
  errno = 0;
  *value = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') {
    fprintf(stderr, "polydev guest-run: not a number: %s\n", text);
    return -1;
  }
  return 0;
}

int clock_main(const char *seconds) {
  unsigned long long now;
  if (parse_count(seconds, &now) != 0) return 2;
  struct timeval time = {.tv_sec = (time_t)now, .tv_usec = 0};
  if (settimeofday(&time, NULL) != 0) return fail("settimeofday");
  return 0;
}

/* The block device whose virtio serial is `serial` (the host names its disks), as /dev/vdX. */
static int find_disk(const char *serial, char *device, size_t size) {
  DIR *blocks = opendir("/sys/block");
  if (blocks == NULL) return fail("/sys/block");
  struct dirent *entry;
  int found = -1;
  while (found != 0 && (entry = readdir(blocks)) != NULL) {
    if (strncmp(entry->d_name, "vd", 2) != 0) continue;
    char path[PATH_MAX], text[64] = {0};
    snprintf(path, sizeof path, "/sys/block/%s/serial", entry->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t length = read(fd, text, sizeof text - 1);
    close(fd);
    if (length <= 0) continue;
    text[strcspn(text, "\n")] = '\0';
    if (strcmp(text, serial) == 0) {
      snprintf(device, size, "/dev/%s", entry->d_name);
      found = 0;
    }
  }
  closedir(blocks);
  if (found != 0) fprintf(stderr, "polydev guest-run: no %s disk\n", serial);
  return found;
}

static int make_dir(const char *path, mode_t mode) {
  if (mkdir(path, mode) == 0 || errno == EEXIST) return 0;
  return fail(path);
}

/* mkdir -p: every missing directory of `path` (relative to the current directory or absolute). */
static int make_dirs(const char *path, mode_t mode) {
  char partial[PATH_MAX];
  if (strlen(path) >= sizeof partial) return fail("path too long");
  strcpy(partial, path);
  for (char *slash = strchr(partial + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    if (make_dir(partial, mode) != 0) return 125;
    *slash = '/';
  }
  return make_dir(partial, mode);
}

static int mount_at(const char *source, const char *target, const char *type, unsigned long flags,
                    const char *data) {
  if (mount(source, target, type, flags, data) == 0) return 0;
  char what[PATH_MAX + 32];
  snprintf(what, sizeof what, "mounting %s", target);
  return fail(what);
}

static int write_text(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail(path);
  ssize_t length = (ssize_t)strlen(text);
  int failed = write(fd, text, (size_t)length) != length;
  close(fd);
  return failed ? fail(path) : 0;
}

/* The sandbox's disk: the changes disk as the overlay's upper layer over the image at /sandbox. */
static int mount_root(void) {
  char changes[PATH_MAX];
  if (find_disk("changes", changes, sizeof changes) != 0) return 125;
  // The snapshot's kernel may hold blocks of the template's disk in its cache: drop them.
  int fd = open(changes, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(changes);
  if (ioctl(fd, BLKFLSBUF, 0) != 0) return fail("BLKFLSBUF");
  close(fd);
  if (mount_at(changes, "/changes", "ext4", MS_NODEV, NULL) != 0) return 125;
  if (make_dir("/changes/upper", 0755) != 0 || make_dir("/changes/work", 0755) != 0) return 125;
  return mount_at("overlay", "/sandbox", "overlay", 0,
                  "lowerdir=/lower,upperdir=/changes/upper,workdir=/changes/work");
}

/* A minimal /dev (no devtmpfs: no disks, no console, no kernel memory); cwd is /sandbox. */
static int make_dev(unsigned long long tmp_bytes) {
  if (mount_at("dev", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755") != 0) return 125;
  const struct {
    const char *name;
    unsigned int major, minor;
  } nodes[] = {{"dev/null", 1, 3}, {"dev/zero", 1, 5}, {"dev/full", 1, 7},
               {"dev/random", 1, 8}, {"dev/urandom", 1, 9}, {"dev/tty", 5, 0}};
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    if (mknod(nodes[i].name, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) != 0) return fail(nodes[i].name);
    if (chmod(nodes[i].name, 0666) != 0) return fail(nodes[i].name);
  }
  if (make_dir("dev/pts", 0755) != 0 || make_dir("dev/shm", 0755) != 0) return 125;
  if (mount_at("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620,gid=5") != 0)
    return 125;
  // The agent's terminals come from the sandbox's own devpts instance (its /dev/ptmx node uses
  // the pts beside it), so a terminal's slave is /dev/pts/N inside the sandbox too.
  if (make_dir("/dev/pts", 0755) != 0) return 125;
  if (mount_at("/sandbox/dev/pts", "/dev/pts", NULL, MS_BIND, NULL) != 0) return 125;
  const char *links[][2] = {{"pts/ptmx", "dev/ptmx"},
                            {"/proc/self/fd", "dev/fd"},
                            {"/proc/self/fd/0", "dev/stdin"},
                            {"/proc/self/fd/1", "dev/stdout"},
                            {"/proc/self/fd/2", "dev/stderr"}};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    if (symlink(links[i][0], links[i][1]) != 0) return fail(links[i][1]);
  }
  char sized[64];
  snprintf(sized, sizeof sized, "size=%llu,mode=1777", tmp_bytes);
  if (mount_at("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, sized) != 0) return 125;
  return mount_at("tmp", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, sized);
}

/* The toolbox, read-only, at the sandbox's /opt/polydev; cwd is /sandbox. */
static int mount_toolbox(void) {
  if (mount_at("/opt/polydev", "opt/polydev", NULL, MS_BIND, NULL) != 0) return 125;
  return mount_at(NULL, "opt/polydev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
}

/* The image user's home, made (theirs, 0700) when the image has none; cwd is /sandbox. */
static int make_home(const char *home, uid_t uid, gid_t gid) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, ".%s", home);
  struct stat info;
  if (stat(path, &info) == 0 && S_ISDIR(info.st_mode)) return 0;
  if (make_dirs(path, 0755) != 0) return 125;
  if (chown(path, uid, gid) != 0) return fail("chown home");
  if (chmod(path, 0700) != 0) return fail("chmod home");
  return 0;
}

static int set_limits(const char *memory, const char *pids, const char *quota) {
  char cpu[64];
  snprintf(cpu, sizeof cpu, "%s 100000", quota);
  if (write_text(CGROUP "memory.max", memory) != 0) return 125;
  // No swap in the guest; the file may be missing (kernel without swap accounting).
  int swap = open(CGROUP "memory.swap.max", O_WRONLY | O_CLOEXEC);
  if (swap >= 0) {
    if (write(swap, "0", 1) != 1) { /* nothing to limit */ }
    close(swap);
  }
  if (write_text(CGROUP "pids.max", pids) != 0) return 125;
  return write_text(CGROUP "cpu.max", cpu);
}

int activate_main(char **argv) {
  const char *memory = argv[0], *pids = argv[1], *quota = argv[2], *home = argv[6], *seed = argv[8];
  unsigned long long numbers[8];
  for (int i = 0; i < 8; i++) {
    if (i == 6) continue;
    if (parse_count(argv[i], &numbers[i]) != 0) return 2;
  }
  if (home[0] != '/') {
    fprintf(stderr, "polydev guest-run: the home must be absolute\n");
    return 2;
  }
  umask(022);
  if (clock_main(argv[7]) != 0) return 125;
  if (seed_guest_random(seed) != 0) return 125;
  if (mount_root() != 0) return 125;
  if (chdir("/sandbox") != 0) return fail("chdir /sandbox");
  const char *dirs[] = {"proc", "sys", "dev", "tmp", "opt", "opt/polydev"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    if (make_dir(dirs[i], 0755) != 0) return 125;
  }
  if (mount_at("sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return 125;
  if (make_dev(numbers[3]) != 0) return 125;
  if (mount_toolbox() != 0) return 125;
  if (make_home(home, (uid_t)numbers[4], (gid_t)numbers[5]) != 0) return 125;
  if (set_limits(memory, pids, quota) != 0) return 125;
  // The sandbox's pid namespace and its /proc (mounted from inside it).
  return start_sandbox_init();
}
