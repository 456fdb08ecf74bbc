/*
 * polydev-microvm guest-run: the one native helper inside a microVM guest (static: it runs
 * before anything of the image is trusted, in any image).
 *
 *   guest-run --init <program> [args...]
 *     pid 1 after the initramfs script: starts the agent, reaps every orphan, and powers the
 *     guest off when the agent ends (the host then sees QEMU exit instead of a silent guest).
 *
 *   guest-run --seed <hex bytes>
 *     Mixes the host's random bytes into the guest kernel's pool and reseeds its generator
 *     (RNDADDENTROPY, RNDRESEEDCRNG): every sandbox restored from one boot snapshot starts with
 *     the snapshot's generator state, which must not be shared.
 *
 *   guest-run <program> [args...]     (how the agent starts every command of the sandbox)
 *     Control comes in four environment variables, removed before the command runs:
 *     POLYDEV_RUN_UID, POLYDEV_RUN_GID, POLYDEV_RUN_CWD and POLYDEV_RUN_ROOT. The rest of the
 *     environment is exactly the command's. Arguments would show in /proc/<pid>/cmdline to
 *     every process of the guest; a root process's environ is readable by root only. Being
 *     static, no LD_PRELOAD of the command's environment runs in it while it is still root.
 *     It joins the sandbox's cgroup, enters the sandbox's root (chroot), becomes the user,
 *     changes to the working directory and execs the command.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

#define SANDBOX_CGROUP "/sys/fs/cgroup/sandbox/cgroup.procs"

static int fail(const char *what) {
  fprintf(stderr, "polydev guest-run: %s: %s\n", what, strerror(errno));
  return 125;
}

static const char *take(const char *name) {
  const char *value = getenv(name);
  if (value == NULL) return NULL;
  char *copy = strdup(value);
  unsetenv(name);
  return copy;
}

static int init_main(char **argv) {
  pid_t agent = fork();
  if (agent < 0) return fail("fork");
  if (agent == 0) {
    setsid();
    execv(argv[0], argv);
    _exit(fail(argv[0]));
  }
  for (;;) {
    int status = 0;
    pid_t pid = wait(&status);
    if (pid == agent || (pid < 0 && errno == ECHILD)) break;
  }
  fprintf(stderr, "polydev guest-run: the agent ended; powering off\n");
  sync();
  reboot(RB_POWER_OFF);
  return 1;
}

static int seed_main(const char *hex) {
  size_t length = strlen(hex) / 2;
  if (length == 0 || length > 512) return fail("seed length");
  struct {
    struct rand_pool_info info;
    unsigned char bytes[512];
  } pool;
  for (size_t i = 0; i < length; i++) {
    unsigned int byte;
    if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return fail("seed");
    pool.bytes[i] = (unsigned char)byte;
  }
  pool.info.entropy_count = (int)(length * 8);
  pool.info.buf_size = (int)length;
  int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail("/dev/urandom");
  if (ioctl(fd, RNDADDENTROPY, &pool) != 0) return fail("RNDADDENTROPY");
  if (ioctl(fd, RNDRESEEDCRNG) != 0) return fail("RNDRESEEDCRNG");
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--init") == 0) return init_main(&argv[2]);
  if (argc == 3 && strcmp(argv[1], "--seed") == 0) return seed_main(argv[2]);
  if (argc < 2) {
    fprintf(stderr, "usage: %s <program> [args...]\n", argv[0]);
    return 2;
  }
  const char *uid_text = take("POLYDEV_RUN_UID");
  const char *gid_text = take("POLYDEV_RUN_GID");
  const char *cwd = take("POLYDEV_RUN_CWD");
  const char *root = take("POLYDEV_RUN_ROOT");
  if (uid_text == NULL || gid_text == NULL || cwd == NULL || root == NULL) {
    fprintf(stderr, "polydev guest-run: missing control variables\n");
    return 125;
  }
  uid_t uid = (uid_t)strtoul(uid_text, NULL, 10);
  gid_t gid = (gid_t)strtoul(gid_text, NULL, 10);

  int procs = open(SANDBOX_CGROUP, O_WRONLY | O_CLOEXEC);
  if (procs < 0) return fail(SANDBOX_CGROUP);
  if (write(procs, "0", 1) != 1) return fail("joining the sandbox's cgroup");
  close(procs);

  if (chroot(root) != 0) return fail("chroot");
  if (chdir("/") != 0) return fail("chdir /");
  if (setgroups(0, NULL) != 0) return fail("setgroups");
  if (setgid(gid) != 0) return fail("setgid");
  if (setuid(uid) != 0) return fail("setuid");
  if (cwd[0] != '\0' && chdir(cwd) != 0) {
    fprintf(stderr, "polydev guest-run: cannot change to %s: %s\n", cwd, strerror(errno));
    return 126;
  }
  // The agent ignores nothing, but a signal disposition must not leak into the command.
  signal(SIGPIPE, SIG_DFL);
  execvp(argv[1], &argv[1]);
  fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
  return errno == ENOENT ? 127 : 126;
}
