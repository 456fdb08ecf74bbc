/*
 * polydev-gvisor-init: pid 1 of a gVisor sandbox, run by runsc as the image's root.
 *
 *   guest-init <cgroup dir> <pids max> <uid> <gid> <program> [args...]
 *
 * 1. Puts the sandbox's processes in a pids cgroup of the Sentry's own cgroupfs with
 *    pids.max: Debian's runsc applies the OCI pids limit only to the host cgroup, where the
 *    Sentry's threads count too and running out kills the whole Sentry, and it does not enforce
 *    RLIMIT_NPROC. A fork bomb then fails to fork inside, as on Linux.
 * 2. Gives up CAP_SYS_ADMIN for good (bounding set included), so nothing later can mount
 *    cgroupfs again. (The sandbox's root can still write the mounted cgroup's files if the
 *    read-only remount fails: it can raise only its own limit, below the host's backstop.)
 * 3. Starts the program as uid:gid (the kernel drops every capability when root becomes
 *    another user) and reaps every orphan until it exits, then exits with its status.
 * 4. Passes SIGUSR1 and SIGUSR2 on to the program (the agent: let go of / listen again on its
 *    host socket around a checkpoint). The host sends them with `runsc kill <container>`, which
 *    reaches pid 1 of a forked sandbox too, where `--pid` refuses a process the restored kernel
 *    records under the source's container id.
 * Fails closed: without the limit, no program.
 *
 *   guest-init --as <uid> <gid> <n> <KEY=VALUE × n> <program> [args...]
 *
 * The agent (root) starts every command through this: the command runs as uid:gid, so a
 * `kill -9 -1` of the image's user cannot end the agent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t agent_pid;

static void forward_to_agent(int sig) {
  if (agent_pid > 0) kill(agent_pid, sig);
}

static void die(const char *what) {
  fprintf(stderr, "polydev-gvisor-init: %s: %s\n", what, strerror(errno));
  exit(125);
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  size_t length = strlen(text);
  if (write(fd, text, length) != (ssize_t)length) die(path);
  close(fd);
}

static void drop_sys_admin(void) {
  if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) != 0) die("dropping CAP_SYS_ADMIN from the bounding set");
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &header, data) != 0) die("capget");
  unsigned int bit = 1u << (CAP_SYS_ADMIN % 32);
  data[CAP_SYS_ADMIN / 32].effective &= ~bit;
  data[CAP_SYS_ADMIN / 32].permitted &= ~bit;
  data[CAP_SYS_ADMIN / 32].inheritable &= ~bit;
  if (syscall(SYS_capset, &header, data) != 0) die("capset");
}

static void become(uid_t uid, gid_t gid) {
  if (uid == 0 && gid == 0) return;
  if (setgroups(0, NULL) != 0) die("setgroups");
  if (setgid(gid) != 0) die("setgid");
  if (setuid(uid) != 0) die("setuid");
}

/*
 * The Sentry's /dev has devices the sandbox has no use for (fuse, net/tun), and the stdio runsc
 * hands pid 1 are host descriptors: gone before anything else runs.
 */
static void tidy_up(void) {
  unlink("/dev/fuse");
  unlink("/dev/net/tun");
  rmdir("/dev/net");
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) die("/dev/null");
  for (int fd = 0; fd <= 2; fd++) {
    if (dup2(null, fd) < 0) die("dup2");
  }
  close(null);
}

int main(int argc, char **argv) {
  if (argc >= 6 && strcmp(argv[1], "--as") == 0) {
    become((uid_t)strtoul(argv[2], NULL, 10), (gid_t)strtoul(argv[3], NULL, 10));
    long count = strtol(argv[4], NULL, 10);
    if (count < 0 || count > argc - 6) {
      fprintf(stderr, "polydev-gvisor-init: bad environment count\n");
      return 125;
    }
    // Only now, as the user: the command's environment.
    if (clearenv() != 0) die("clearenv");
    for (long i = 0; i < count; i++) {
      if (putenv(argv[5 + i]) != 0) die("putenv");
    }
    char **command = &argv[5 + count];
    execvp(command[0], command);
    fprintf(stderr, "%s: %s\n", command[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
  }
  if (argc < 6) {
    fprintf(stderr, "usage: %s <cgroup dir> <pids max> <uid> <gid> <program> [args...]\n", argv[0]);
    return 2;
  }
  tidy_up();
  const char *cgroup = argv[1];
  const char *pids_max = argv[2];
  uid_t uid = (uid_t)strtoul(argv[3], NULL, 10);
  gid_t gid = (gid_t)strtoul(argv[4], NULL, 10);

  char path[4096];
  if (mount("none", cgroup, "cgroup", 0, "pids") != 0) die("mounting the pids cgroup");
  snprintf(path, sizeof path, "%s/sandbox", cgroup);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) die(path);
  snprintf(path, sizeof path, "%s/sandbox/pids.max", cgroup);
  write_file(path, pids_max);
  snprintf(path, sizeof path, "%s/sandbox/cgroup.procs", cgroup);
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  write_file(path, pid);
  // Kept mounted (the Sentry drops a hierarchy, limits and all, once it is unmounted) and made
  // read-only where the Sentry allows it; without CAP_SYS_ADMIN nothing can remount it.
  if (mount(NULL, cgroup, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) {
    fprintf(stderr, "polydev-gvisor-init: the pids cgroup stays writable by root: %s\n", strerror(errno));
  }
  drop_sys_admin();

  /*
   * The agent and everything it starts live in a user namespace of their own inside the
   * Sentry's, mapping uids and gids 0-65535 onto the same numbers: the sandbox's root is then
   * root of that namespace only, so what needs the initial namespace's capabilities (mknod of
   * devices, setting the clock, reading the kernel log) fails as for any container root.
   */
  int unshared[2], mapped[2];
  if (pipe2(unshared, O_CLOEXEC) != 0 || pipe2(mapped, O_CLOEXEC) != 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    char byte = 0;
    if (unshare(CLONE_NEWUSER) != 0) die("unshare(CLONE_NEWUSER)");
    if (write(unshared[1], &byte, 1) != 1) die("signalling the init");
    if (read(mapped[0], &byte, 1) != 1) die("waiting for the id maps");
    become(uid, gid);
    execv(argv[5], &argv[5]);
    die(argv[5]);
  }
  char byte = 0;
  if (read(unshared[0], &byte, 1) != 1) die("waiting for the agent's namespace");
  snprintf(path, sizeof path, "/proc/%d/uid_map", (int)child);
  write_file(path, "0 0 65536\n");
  snprintf(path, sizeof path, "/proc/%d/gid_map", (int)child);
  write_file(path, "0 0 65536\n");
  if (write(mapped[1], &byte, 1) != 1) die("signalling the agent");
  agent_pid = child;
  struct sigaction forward = {0};
  forward.sa_handler = forward_to_agent;
  sigemptyset(&forward.sa_mask);
  if (sigaction(SIGUSR1, &forward, NULL) != 0 || sigaction(SIGUSR2, &forward, NULL) != 0) die("sigaction");
  for (;;) {
    int status;
    pid_t done = wait(&status);
    if (done < 0) {
      if (errno == EINTR) continue;
      die("wait");
    }
    if (done == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
}
