/*
 * --image: starts a sandbox whose root file system is an image, with a real root inside.
 *
 * Why not bubblewrap here: bubblewrap always sets no_new_privs and maps one uid, so `sudo`,
 * `apt-get` (which drops to its `_apt` user) and `chown` to any uid cannot work in it. This
 * mode runs as root on the host, straight after join_from_stdin has opened the sandbox's files
 * and joined its cgroups, and builds the sandbox itself, with the kernel's own primitives:
 *
 *  1. A user namespace mapping 0..count-1 inside to the sandbox's own block of host uids
 *     (hostBase..hostBase+count-1): root inside is an unprivileged host uid, and its
 *     capabilities only reach what that namespace owns.
 *  2. Idmapped clones (mount_setattr MOUNT_ATTR_IDMAP) of every layer directory, of the disk
 *     and of the toolbox: their files are stored with the image's own uids, so one copy serves
 *     every sandbox whatever its uid block, and a disk moves between blocks (stop/start, fork)
 *     without a chown. Layers and toolbox are read-only and nodev; nothing is nosuid except the
 *     toolbox, so setuid binaries of the image (sudo) work, for the sandbox's root only.
 *  3. New mount, pid, network, ipc, uts and cgroup namespaces owned by that user namespace,
 *     the child's alone (this process stays in the host's); the sandbox's pid 1 mounts an overlayfs (userxattr) of the layers with its upper directory on
 *     the disk, a fresh /proc, a minimal /dev with its own devpts, /run, the exec server's
 *     socket directory and binary, and pivots into it.
 *  4. Before it becomes the exec server: no further user namespaces (user.max_user_namespaces
 *     0 in its own namespace, which it then cannot raise), a capability bounding set of what a
 *     development machine's root needs (no CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW,
 *     CAP_SYS_PTRACE, CAP_MKNOD, ...), the seccomp deny-list (hardening.c) and not dumpable.
 *     no_new_privs stays off so that sudo works; it could only ever gain this bounding set.
 *
 *   --image <hostBase> <count> <nLayers> <layer>... <disk dir> <toolbox dir or -> <init copy>
 *           <n> <cgroup.procs>... -- <init argv>...
 * Descriptors 4 (the network's /etc files) and 5 (the exec socket directory) are open already.
 * This process stays behind as the sandbox's monitor (what the driver calls its bwrap pid): it
 * writes {"child-pid": N} on fd 3 like bubblewrap's info fd and exits with pid 1's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define MAX_LAYERS 128
#define STAGE "/tmp"

/* What root inside keeps: Docker's default set without CAP_NET_RAW, CAP_MKNOD and CAP_SETFCAP. */
static const int kept_capabilities[] = {
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,           CAP_FSETID,      CAP_KILL,        CAP_SETGID,
    CAP_SETUID, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_AUDIT_WRITE,
};

static int fail(const char *what) {
  fprintf(stderr, "polydev: image sandbox: %s: %s\n", what, strerror(errno));
  return 125;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t length = (ssize_t)strlen(text);
  int ok = write(fd, text, (size_t)length) == length;
  close(fd);
  return ok ? 0 : -1;
}

/* A user namespace with the sandbox's mapping, owned by host root; returns its descriptor. */
static int make_user_namespace(long host_base, long count) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return -1;
  pid_t helper = fork();
  if (helper < 0) return -1;
  if (helper == 0) {
    char byte = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
    if (write(ready[1], &byte, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char byte = 'n';
  int ok = read(ready[0], &byte, 1) == 1 && byte == 'y';
  close(ready[0]);
  int ns = -1;
  if (ok) {
    char path[64], map[64];
    snprintf(map, sizeof map, "0 %ld %ld\n", host_base, count);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)helper);
    ok = write_file(path, map) == 0;
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)helper);
    ok = ok && write_file(path, "allow") == 0;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)helper);
    ok = ok && write_file(path, map) == 0;
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)helper);
    if (ok) ns = open(path, O_RDONLY | O_CLOEXEC);
  }
  kill(helper, SIGKILL);
  waitpid(helper, NULL, 0);
  return ns;
}

/*
 * A detached clone of `path`, its owners mapped through `userns`, with `flags` set. The storage
 * pool mounts everything nosuid on the host, where its uid 0 files are not the host's; the clone
 * clears it unless asked, because inside the sandbox uid 0 is its own root.
 */
static int idmapped_tree(const char *path, int userns, unsigned long long flags) {
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) return -1;
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP | flags,
                            .attr_clr = (flags & MOUNT_ATTR_NOSUID) ? 0 : MOUNT_ATTR_NOSUID,
                            .userns_fd = (unsigned long long)userns};
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    int saved = errno;
    close(tree);
    errno = saved;
    return -1;
  }
  return tree;
}

static int attach(int tree, const char *target) {
  if (mkdir(target, 0755) != 0 && errno != EEXIST) return -1;
  return (int)syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
}

static int make_dir(const char *path, mode_t mode) {
  if (mkdir(path, mode) != 0 && errno != EEXIST) return -1;
  return 0;
}

/* An empty file to bind over (a bind needs a target of the same kind). */
static int bind_file(const char *source, const char *target, unsigned long extra) {
  int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return -1;
  close(fd);
  if (mount(source, target, NULL, MS_BIND, NULL) != 0) return -1;
  if (extra != 0 && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | extra, NULL) != 0) return -1;
  return 0;
}

static int build_dev(const char *root) {
  char path[4096];
  snprintf(path, sizeof path, "%s/dev", root);
  if (make_dir(path, 0755) != 0 || mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") != 0)
    return -1;
  static const char *devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
    char source[64];
    snprintf(source, sizeof source, "/dev/%s", devices[i]);
    snprintf(path, sizeof path, "%s/dev/%s", root, devices[i]);
    if (bind_file(source, path, 0) != 0) return -1;
  }
  snprintf(path, sizeof path, "%s/dev/pts", root);
  if (make_dir(path, 0755) != 0 ||
      mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620") != 0)
    return -1;
  snprintf(path, sizeof path, "%s/dev/shm", root);
  if (make_dir(path, 01777) != 0 || mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
    return -1;
  static const char *links[][2] = {{"pts/ptmx", "ptmx"},     {"/proc/self/fd", "fd"},
                                   {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
                                   {"/proc/self/fd/2", "stderr"}};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    snprintf(path, sizeof path, "%s/dev/%s", root, links[i][1]);
    if (symlink(links[i][0], path) != 0) return -1;
  }
  return 0;
}

/* lo up: a new network namespace starts with it down. */
static int loopback_up(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return -1;
  struct ifreq request;
  memset(&request, 0, sizeof request);
  strcpy(request.ifr_name, "lo");
  int result = ioctl(sock, SIOCGIFFLAGS, &request);
  if (result == 0) {
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    result = ioctl(sock, SIOCSIFFLAGS, &request);
  }
  close(sock);
  return result;
}

/* Copies `name` from the network's /etc directory (fd 4) over the sandbox's, inside its root. */
static void install_etc_file(const char *name) {
  int source = openat(4, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (source < 0) return;
  char text[8192];
  ssize_t length = read(source, text, sizeof text);
  close(source);
  if (length < 0) return;
  char target[64];
  snprintf(target, sizeof target, "/etc/%s", name);
  /* Resolved inside the new root: a symlink there (systemd's resolv.conf) is replaced, never
   * followed out of the sandbox. */
  unlink(target);
  int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return;
  if (write(fd, text, (size_t)length) != length) {
    /* A full disk: the sandbox still starts, with what it had. */
  }
  close(fd);
}

static int drop_capabilities(void) {
  for (int cap = 0; cap <= 63; cap++) {
    int keep = 0;
    for (size_t i = 0; i < sizeof kept_capabilities / sizeof kept_capabilities[0]; i++)
      if (kept_capabilities[i] == cap) keep = 1;
    if (keep) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return -1;
  }
  return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0 || errno == EINVAL ? 0 : -1;
}

struct image_plan {
  int layers[MAX_LAYERS];
  int layer_count;
  int disk;
  int toolbox; /* -1 when none */
  int exec_dir; /* a clone of descriptor 5 (the exec socket directory) */
  const char *init_copy;
  char **init_argv;
};

/* The sandbox's pid 1 before it becomes the exec server. Never returns. */
static void become_init(const struct image_plan *plan) {
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) _exit(fail("private mounts"));
  if (mount("polydev-stage", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") != 0) _exit(fail("stage"));
  char path[4096], options[4096];
  size_t used = (size_t)snprintf(options, sizeof options, "lowerdir=");
  /* overlayfs lists the top layer first. */
  for (int i = plan->layer_count - 1; i >= 0; i--) {
    snprintf(path, sizeof path, STAGE "/l%d", i);
    if (attach(plan->layers[i], path) != 0) _exit(fail("attach a layer"));
    used += (size_t)snprintf(options + used, sizeof options - used, "%s%s", path, i > 0 ? ":" : "");
  }
  if (attach(plan->disk, STAGE "/disk") != 0) _exit(fail("attach the disk"));
  snprintf(options + used, sizeof options - used,
           ",upperdir=" STAGE "/disk/upper,workdir=" STAGE "/disk/work,userxattr");
  const char *root = STAGE "/root";
  if (make_dir(root, 0755) != 0 || mount("overlay", root, "overlay", MS_NODEV, options) != 0)
    _exit(fail("mount the root file system"));
  /* Mount points the image may lack (created in the upper layer, harmless). */
  static const char *dirs[] = {"proc", "run", "tmp", "etc", "opt"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
    make_dir(path, 0755);
  }
  snprintf(path, sizeof path, "%s/tmp", root);
  chmod(path, 01777);
  snprintf(path, sizeof path, "%s/proc", root);
  if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) _exit(fail("mount /proc"));
  if (build_dev(root) != 0) _exit(fail("build /dev"));
  snprintf(path, sizeof path, "%s/run", root);
  if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) _exit(fail("mount /run"));
  snprintf(path, sizeof path, "%s/run/polydev", root);
  if (attach(plan->exec_dir, path) != 0) _exit(fail("bind the exec directory"));
  snprintf(path, sizeof path, "%s/run/polydev-init", root);
  if (bind_file(plan->init_copy, path, MS_RDONLY | MS_NOSUID | MS_NODEV) != 0) _exit(fail("bind the init"));
  if (plan->toolbox >= 0) {
    snprintf(path, sizeof path, "%s/opt/polydev", root);
    if (attach(plan->toolbox, path) != 0) _exit(fail("attach the toolbox"));
  }
  if (sethostname("sandbox", 7) != 0) _exit(fail("hostname"));
  if (loopback_up() != 0) _exit(fail("loopback"));
  if (chdir(root) != 0 || syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
    _exit(fail("pivot into the root file system"));
  install_etc_file("resolv.conf");
  install_etc_file("hosts");
  /* No nested user namespaces: where most of the kernel's rarely used code is reached from. */
  if (write_file("/proc/sys/user/max_user_namespaces", "0") != 0) _exit(fail("limit user namespaces"));
  if (drop_capabilities() != 0) _exit(fail("drop capabilities"));
  if (harden_root_init() != 0) _exit(fail("seccomp"));
  close_descriptors_from(3);
  static char *clean_env[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
  execve(plan->init_argv[0], plan->init_argv, clean_env);
  _exit(fail("start the init"));
}

static int parse_long(const char *text, long *value) {
  char *end;
  errno = 0;
  *value = strtol(text, &end, 10);
  return *end == '\0' && errno == 0 ? 0 : -1;
}

int image_sandbox_main(int argc, char **argv) {
  /* argv[0] is "--image" */
  long host_base, count, layer_count, procs_count;
  if (argc < 4 || parse_long(argv[1], &host_base) != 0 || parse_long(argv[2], &count) != 0 ||
      parse_long(argv[3], &layer_count) != 0 || host_base < 1000 || count < 1 || count > 65536 ||
      layer_count < 1 || layer_count > MAX_LAYERS || argc < 4 + layer_count + 4)
    return 125;
  char **layers = argv + 4;
  int at = 4 + (int)layer_count;
  const char *disk = argv[at++];
  const char *toolbox = argv[at++];
  const char *init_copy = argv[at++];
  if (parse_long(argv[at++], &procs_count) != 0 || procs_count < 0 || at + procs_count >= argc) return 125;
  char **procs = argv + at;
  at += (int)procs_count;
  if (strcmp(argv[at], "--") != 0 || at + 1 >= argc) return 125;
  struct image_plan plan = {.layer_count = (int)layer_count, .init_copy = init_copy, .init_argv = argv + at + 1};

  char pid[32];
  int length = snprintf(pid, sizeof pid, "%d", (int)getpid());
  for (long i = 0; i < procs_count; i++) {
    int fd = open(procs[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, pid, (size_t)length) != length) return fail("join the cgroups");
    close(fd);
  }
  int userns = make_user_namespace(host_base, count);
  if (userns < 0) return fail("create the user namespace");
  for (int i = 0; i < plan.layer_count; i++) {
    plan.layers[i] = idmapped_tree(layers[i], userns, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV);
    if (plan.layers[i] < 0) return fail(layers[i]);
  }
  plan.disk = idmapped_tree(disk, userns, MOUNT_ATTR_NODEV);
  if (plan.disk < 0) return fail("map the disk");
  plan.toolbox = -1;
  if (strcmp(toolbox, "-") != 0) {
    plan.toolbox = idmapped_tree(toolbox, userns, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
    if (plan.toolbox < 0) return fail("map the toolbox");
  }
  /* A mount of the host's namespace cannot be bound from inside a new one: cloned here. */
  plan.exec_dir = (int)syscall(SYS_open_tree, 5, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  if (plan.exec_dir < 0) return fail("clone the exec directory");
  if (setns(userns, CLONE_NEWUSER) != 0) return fail("enter the user namespace");
  close(userns);
  if (setgroups(0, NULL) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
    return fail("become root inside");
  /* The namespaces are the child's alone (clone, not unshare): this process stays in the host's
   * mount namespace, so it never pins a copy of every host mount (other sandboxes' disks, whole
   * storage pools) for as long as the sandbox runs. Like fork: no stack, a copy of this one. */
  pid_t init = (pid_t)syscall(SYS_clone,
                              CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
                                  CLONE_NEWCGROUP | SIGCHLD,
                              NULL, NULL, NULL, 0);
  if (init < 0) return fail("start the init in its namespaces");
  if (init == 0) become_init(&plan);
  for (int i = 0; i < plan.layer_count; i++) close(plan.layers[i]);
  close(plan.disk);
  close(plan.exec_dir);
  if (plan.toolbox >= 0) close(plan.toolbox);
  close(4);
  close(5);
  dprintf(3, "{\n    \"child-pid\": %d\n}\n", (int)init);
  close(3);
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) dup2(null_fd, STDOUT_FILENO);
  int status = 0;
  while (waitpid(init, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
