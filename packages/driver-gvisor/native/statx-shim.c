/*
 * Preloaded into every dynamically linked program of a gVisor sandbox (/etc/ld.so.preload).
 * Debian's runsc (20221219) answers statx(2) with EINVAL whenever AT_NO_AUTOMOUNT is set, and
 * coreutils (ls, stat, cp) always sets it, so they fail on every path. gVisor has no automounts,
 * so dropping the flag changes nothing else.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
  return (int)syscall(SYS_statx, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
}
