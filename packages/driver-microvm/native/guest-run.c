/*
 * polydev-microvm guest-run: the one native helper inside a microVM guest (static: it runs
 * before anything of the image is trusted, in any image).
 *
 *   guest-run --init <program> [args...]
 *     pid 1 after the initramfs script: starts the agent, reaps every orphan, and powers the
 *     guest off when the agent ends (the host then sees QEMU exit instead of a silent guest).
 *
 *   guest-run --activate <memory bytes> <pids max> <cpu quota us> <tmp bytes> <uid> <gid> <home> <now s> <seed hex>
 *     Turns a restored boot snapshot into one sandbox (run once by the agent, as the guest's
 *     root), with plain system calls: a shell script of some 40 busybox commands took seconds
 *     under TCG. It sets the clock and reseeds the random generator from the host (a restored
 *     guest has the snapshot's: they must not be shared), mounts the sandbox's own disk (the
 *     changes disk) as the overlay's upper layer over the image, gives the sandbox a minimal
 *     /dev (no devtmpfs: no disks, no console, no kernel memory), sized memory file systems, the
 *     home, and the limits of its cgroup. Last it makes the sandbox's pid namespace, whose pid 1
 *     (in the sandbox's cgroup) mounts the sandbox's /proc from inside it and reaps its orphans:
 *     the guest's kernel threads and the agent are then invisible to sandbox processes. That
 *     pid 1 then moves into a user namespace of its own mapping ids 0-65535 onto the same
 *     numbers, which every command joins: the sandbox's root is root of that namespace only, so
 *     what needs the guest's initial namespace (mounts, devices, the clock, module loading)
 *     fails as for any container's root.
 *
 *   guest-run --clock <now s>
 *     Sets the guest's clock (after a resume: the snapshot's clock is stale).
 *
 *   guest-run --fork <now s> <seed hex>
 *     A fork of a running sandbox: its clock, and its own random generator (every fork restored
 *     the same saved state: they must not share what they draw next).
 *
 *   guest-run <program> [args...]     (how the agent starts every command of the sandbox)
 *     Control comes in four environment variables, removed before the command runs:
 *     POLYDEV_RUN_UID, POLYDEV_RUN_GID, POLYDEV_RUN_CWD and POLYDEV_RUN_ROOT. The rest of the
 *     environment is exactly the command's. Arguments would show in /proc/<pid>/cmdline to
 *     every process of the guest; a root process's environ is readable by root only. Being
 *     static, no LD_PRELOAD of the command's environment runs in it while it is still root.
 *     It joins the sandbox's cgroup and pid namespace (forking: the command is the child, this
 *     process stays outside, passes signals on and exits as the command did), enters the
 *     sandbox's root (chroot), becomes the user, changes to the working directory and execs.
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
#include <sched.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>
#include "guest-run.h"

#define SANDBOX_CGROUP "/sys/fs/cgroup/sandbox/cgroup.procs"
#define SANDBOX_INIT_PID "/run/polydev-sandbox-init.pid"

static volatile pid_t command_pid = 0;

static void pass_on(int signo) {
  if (command_pid > 0) kill(command_pid, signo);
}

int fail(const char *what) {
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

int seed_guest_random(const char *hex) {
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

static int join_cgroup(void) {
  int procs = open(SANDBOX_CGROUP, O_WRONLY | O_CLOEXEC);
  if (procs < 0) return fail(SANDBOX_CGROUP);
  if (write(procs, "0", 1) != 1) return fail("joining the sandbox's cgroup");
  close(procs);
  return 0;
}

int start_sandbox_init(void) {
  if (join_cgroup() != 0) return 125;
  if (unshare(CLONE_NEWPID) != 0) return fail("unshare(CLONE_NEWPID)");
  int mounted[2];
  if (pipe2(mounted, O_CLOEXEC) != 0) return fail("pipe");
  pid_t init = fork();
  if (init < 0) return fail("fork");
  if (init == 0) {
    if (mount("proc", "/sandbox/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) _exit(fail("mounting /proc"));
    if (unshare(CLONE_NEWUSER) != 0) _exit(fail("unshare(CLONE_NEWUSER)"));
    // The parent writes the id maps, then the activation may go on.
    if (write(mounted[1], "1", 1) != 1) _exit(fail("signalling"));
    close(mounted[0]);
    close(mounted[1]);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      if (null > 2) close(null);
    }
    setsid();
    for (;;) {
      if (wait(NULL) < 0 && errno == ECHILD) pause();
    }
  }
  close(mounted[1]);
  char byte;
  if (read(mounted[0], &byte, 1) != 1) return fail("the sandbox's init did not start");
  close(mounted[0]);
  const char *maps[] = {"uid_map", "gid_map"};
  for (int i = 0; i < 2; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)init, maps[i]);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0 0 65536\n", 10) != 10) return fail(path);
    close(fd);
  }
  FILE *file = fopen(SANDBOX_INIT_PID, "w");
  if (file == NULL) return fail(SANDBOX_INIT_PID);
  fprintf(file, "%d\n", (int)init);
  fclose(file);
  return 0;
}

static int join_namespace(int init, const char *name, int type) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/%s", init, name);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return fail(path);
  if (setns(ns, type) != 0) return fail(path);
  close(ns);
  return 0;
}

/* The pid namespace first (it belongs to the initial user namespace), then the user namespace. */
static int enter_sandbox_namespaces(void) {
  FILE *file = fopen(SANDBOX_INIT_PID, "r");
  int init = 0;
  if (file == NULL || fscanf(file, "%d", &init) != 1) return fail("the sandbox's init");
  fclose(file);
  if (join_namespace(init, "pid", CLONE_NEWPID) != 0) return 125;
  if (join_namespace(init, "user", CLONE_NEWUSER) != 0) return 125;
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--init") == 0) return init_main(&argv[2]);
  if (argc == 11 && strcmp(argv[1], "--activate") == 0) return activate_main(&argv[2]);
  if (argc == 3 && strcmp(argv[1], "--clock") == 0) return clock_main(argv[2]);
  if (argc == 4 && strcmp(argv[1], "--fork") == 0) {
    if (clock_main(argv[2]) != 0) return 125;
    return seed_guest_random(argv[3]) != 0 ? 125 : 0;
  }
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

  if (join_cgroup() != 0) return 125;
  if (enter_sandbox_namespaces() != 0) return 125;
  pid_t child = fork();
  if (child < 0) return fail("fork");
  if (child > 0) {
    // Outside the namespace: what the agent signals (this pid, or the process group) reaches
    // the command; its exit is this process's.
    command_pid = child;
    int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGTSTP, SIGALRM};
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) signal(forwarded[i], pass_on);
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
      if (errno != EINTR) return fail("waitpid");
    }
    if (WIFSIGNALED(status)) {
      signal(WTERMSIG(status), SIG_DFL);
      kill(getpid(), WTERMSIG(status));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

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
