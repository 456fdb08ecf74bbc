/*
 * polydev exec server: the sandbox's pid 1 (bubblewrap's init) and the only way the host starts
 * processes in it.
 *
 * Why it exists: every process in a sandbox (commands, terminals, background processes, file
 * operations, port forwards) is forked from this init, which already lives inside every
 * namespace and cgroup of the sandbox. So the host spawns nothing per operation, no request
 * value (argv, environment, working directory) ever reaches a process running on the host, and
 * no descriptor the host holds can reach a sandbox process.
 *
 * As pid 1 it hardens itself first (hardening.c: not dumpable, no_new_privs, a seccomp
 * deny-list, all inherited descriptors closed), ignores the signals a sandbox user may send it,
 * reaps every orphan, and prints `ready` on stdout once it is listening (the readiness
 * handshake). Then its stdio becomes /dev/null, so no host file (the console log) stays open in
 * the sandbox. It listens on argv[1], a unix socket in a directory the host bound into the
 * sandbox; after the handshake the host makes that directory root-owned, so nobody inside can
 * replace the socket.
 *
 * Per connection it forks a relay, which reads one request, forks the command (its own session
 * and process group), and relays stdin/stdout/stderr (or a terminal), signals and the exit status
 * over the connection with poll(). The relay reads a pipe only when its outgoing buffer has room
 * and reads the socket only when its stdin buffer is empty, so back-pressure flows through the
 * socket buffers and nothing is ever held whole. A relay serves one request after another on its
 * connection (the host keeps idle connections for reuse).
 *
 * Safety: it runs as the sandbox user with no capabilities, inside the sandbox's namespaces and
 * cgroups; a sandbox process that connects to it can only run what it could run anyway. The
 * host treats whatever it says as untrusted input.
 *
 * Wire format (both directions): frames of [type: 1 byte][length: 4 bytes big-endian][payload].
 *   host -> relay  'U' optional, right before the request: the user to run it as (users.c); an
 *                      image sandbox's root init switches to them, any other init refuses all
 *                      but its own user
 *                  'R' request: u32 argc, u32 envc, then argc + envc + 1 NUL-terminated strings
 *                      (argv..., "KEY=value"..., cwd; an empty cwd is the user's home); the
 *                      first frame after any 'U' 
 *                  'T' the same on a terminal: u16 cols, u16 rows, then an 'R' payload
 *                  'I' stdin bytes        'i' stdin end (no payload)
 *                  'S' signal the command: 1 byte signal number
 *                  'W' terminal size: u16 cols, u16 rows
 *                  'K' kill the command, its process group and its descendants (SIGKILL)
 *                  'D' done with the process (after its exit frame): the next request follows
 *   relay -> host  'O' stdout (or terminal) bytes       'E' stderr bytes
 *                  'X' exit: i32 exit code (-1 when signalled), i32 signal number (0 if none);
 *                      sent once the command has exited and its output is relayed
 *                  'F' could not start: a message (e.g. the process limit is reached)
 * The host closing the connection counts as 'K' for a command; for a terminal it is a hangup:
 * SIGHUP to its session, then the 'K' treatment after HANGUP_GRACE_MS.
 *
 * The same binary has other modes (see main): on the host, `--join` and `--join-from-stdin`
 * start bubblewrap inside the sandbox's cgroups as its uid (or, with `--image`, build an image
 * sandbox itself: image-root.c, whose init then runs as `--root <socket>`), `--deny-routes` (deny-routes.c)
 * closes addresses off in an egress sandbox's network namespace and `--egress-setup`
 * (egress-setup.c) confines an allow-list sandbox's; inside the sandbox, `--bg-*`
 * (background.c), `--connect`/`--listen` (forward.c), `--egress-relay` (egress-relay.c),
 * `--disk-usage` (disk-usage.c) and `--file` (file-ops.c, the agent's file operations) are
 * subcommands the host runs through ordinary requests.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

extern char **environ;

#define HEADER_BYTES 5
/* Largest request (argv + env + cwd); the host refuses bigger ones before sending. */
#define MAX_REQUEST_BYTES (4u * 1024 * 1024)
/* Output is relayed in chunks of at most this; the socket buffer does the rest. */
#define CHUNK_BYTES (64u * 1024)
#define OUT_CAPACITY (CHUNK_BYTES + HEADER_BYTES)
/* Incoming frames are buffered up to this; the host sends stdin in chunks of at most 64 KiB. */
#define IN_CAPACITY (2u * CHUNK_BYTES + HEADER_BYTES)
/* After a terminal's hangup, its processes get this long before SIGKILL. */
#define HANGUP_GRACE_MS 2000

/* ---------- pid 1 ---------- */

static void reap_all(int signo) {
  (void)signo;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static void set_handler(int signo, void (*handler)(int)) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | (signo == SIGCHLD ? SA_NOCLDSTOP : 0);
  sigaction(signo, &action, NULL);
}

/* Everything the init changed goes back to the default, so a command starts as from a shell. */
static void reset_signals(void) {
  for (int signo = 1; signo < NSIG; signo++) {
    if (signo == SIGKILL || signo == SIGSTOP) continue;
    signal(signo, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static void relay(int conn);

/*
 * The other job of this binary, on the host (as root), in place of `sh -c 'echo $$ > ...'` plus
 * setpriv: join the sandbox's cgroups, drop to its uid, exec a program (bubblewrap). One small
 * exec instead of two, and the program is inside the cgroups before its first instruction, so
 * the cgroup namespace bubblewrap creates is rooted at the sandbox's own cgroup. Descriptors
 * above `keep_below` are closed first: whatever the server inherited or opened never reaches
 * the program (and so the sandbox).
 *   --join <uid> <gid> <n> <cgroup.procs file>... -- <program> <args>...
 */
static int join_and_exec(int argc, char **argv, int keep_below) {
  if (argc < 6) return 125;
  char *end;
  long uid = strtol(argv[2], &end, 10);
  if (*end != '\0' || uid <= 0) return 125;
  long gid = strtol(argv[3], &end, 10);
  if (*end != '\0' || gid <= 0) return 125;
  long count = strtol(argv[4], &end, 10);
  if (*end != '\0' || count < 0 || 5 + count + 1 >= argc) return 125;
  if (strcmp(argv[5 + count], "--") != 0) return 125;
  close_descriptors_from(keep_below);
  char pid[32];
  int length = snprintf(pid, sizeof pid, "%d", (int)getpid());
  for (long i = 0; i < count; i++) {
    int fd = open(argv[5 + i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, pid, (size_t)length) != length) {
      fprintf(stderr, "polydev: cannot join %s: %s\n", argv[5 + i], strerror(errno));
      return 125;
    }
    close(fd);
  }
  if (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0 || setuid((uid_t)uid) != 0) {
    fprintf(stderr, "polydev: cannot drop to uid %ld: %s\n", uid, strerror(errno));
    return 125;
  }
  char **program = argv + 5 + count + 1;
  /* A fixed, minimal environment: nothing of the server's reaches the program. */
  static char *clean_env[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
  execve(program[0], program, clean_env);
  fprintf(stderr, "polydev: cannot run %s: %s\n", program[0], strerror(errno));
  return 127;
}

/*
 * --join, with its arguments read from stdin (NUL-separated, up to EOF) once they are known:
 * the host starts this process ahead of time, so that creating a sandbox does not wait for the
 * (large) server process to fork. Before the --join arguments come the files to open, as root,
 * onto given descriptors (the sandbox's /etc files, its socket directory) and the console log
 * that becomes stderr:
 *   <console log> <n> (<fd> <path>)... --join <uid> <gid> <n> <cgroup.procs>... -- <program>...
 * Descriptors 0-3 are the host's pipes (stdin, the readiness stdout, stderr, bubblewrap's info
 * fd); everything else this process inherited is closed before any file is opened.
 */
static int join_from_stdin(void) {
  close_descriptors_from(4);
  static char text[256 * 1024];
  size_t length = 0;
  for (;;) {
    if (length == sizeof text) return 125;
    ssize_t n = read(STDIN_FILENO, text + length, sizeof text - length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 125;
    if (n == 0) break;
    length += (size_t)n;
  }
  if (length == 0) return 0; /* the host shut down without using this spare */
  if (text[length - 1] != '\0') return 125;
  static char *args[4096];
  int count = 0;
  for (size_t at = 0; at < length && count < 4095; at += strlen(text + at) + 1) args[count++] = text + at;
  args[count] = NULL;
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0) return 125;
  close(null_fd);
  if (count < 2) return 125;
  int console = open(args[0], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (console < 0 || dup2(console, STDERR_FILENO) < 0) return 125;
  close(console);
  char *end;
  long files = strtol(args[1], &end, 10);
  if (*end != '\0' || files < 0 || 2 + 2 * files >= count) return 125;
  int highest = 3;
  for (long i = 0; i < files; i++) {
    long target = strtol(args[2 + 2 * i], &end, 10);
    if (*end != '\0' || target < 4 || target > 64) return 125;
    /* O_PATH-free open of a file or a directory, read-only, never following a final symlink. */
    int fd = open(args[3 + 2 * i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      fprintf(stderr, "polydev: cannot open %s: %s\n", args[3 + 2 * i], strerror(errno));
      return 125;
    }
    if (fd != target && (dup2(fd, (int)target) < 0 || close(fd) != 0)) return 125;
    if (fd == target) fcntl(fd, F_SETFD, 0);
    if (target > highest) highest = (int)target;
  }
  char **join = args + 2 + 2 * files;
  int join_count = count - 2 - 2 * (int)files;
  if (strcmp(join[0], "--image") == 0) {
    close_descriptors_from(highest + 1);
    return image_sandbox_main(join_count, join);
  }
  if (strcmp(join[0], "--join") != 0) return 125;
  /* join_and_exec expects argv[0] before "--join". */
  join[-1] = "polydev-exec-server";
  return join_and_exec(join_count + 1, join - 1, highest + 1);
}

/* Whether this init is an image sandbox's root (see image-root.c): commands may then run as any
 * user of the sandbox, and it was hardened before its exec. */
static int root_init = 0;

static int serve(const char *socket_path) {
  /* First, before anything else can run in the sandbox: nothing the host opened stays open,
   * and nothing in the sandbox can attach to this process or take its descriptors. */
  close_descriptors_from(3);
  if (root_init ? prctl(PR_SET_DUMPABLE, 0) != 0 : harden_init() != 0) {
    fprintf(stderr, "polydev init: cannot harden the sandbox: %s\n", strerror(errno));
    return 1;
  }
  /* A namespace's init only receives signals it handles; these are ignored explicitly as well so
   * the behaviour does not depend on that kernel rule. */
  int ignored[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE, SIGTTIN, SIGTTOU, SIGTSTP};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) set_handler(ignored[i], SIG_IGN);
  set_handler(SIGCHLD, reap_all);
  /* Commands of every user of a root sandbox keep their background processes here. */
  mkdir(BG_ROOT, root_init ? 01777 : 0700);
  if (root_init) chmod(BG_ROOT, 01777);

  struct sockaddr_un address;
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  if (strlen(socket_path) >= sizeof address.sun_path) {
    fprintf(stderr, "polydev init: socket path too long\n");
    return 2;
  }
  strcpy(address.sun_path, socket_path);
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) {
    perror("polydev init: socket");
    return 1;
  }
  unlink(socket_path);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 512) != 0) {
    perror("polydev init: listen");
    return 1;
  }
  if (write(STDOUT_FILENO, "ready\n", 6) != 6) return 1;
  /* The readiness pipe is closed by the host right after, and stderr is the host's console log:
   * neither may stay reachable from inside (a relay's descriptors are copies of these). */
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return 1;
  for (int fd = 0; fd <= 2; fd++) dup2(null_fd, fd);
  close(null_fd);

  for (;;) {
    int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
      /* Out of descriptors or memory: wait a little rather than spin; otherwise (EINTR, a peer
       * that gave up) just keep serving. */
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) poll(NULL, 0, 10);
      continue;
    }
    pid_t pid = fork();
    if (pid == 0) {
      close(listener);
      reset_signals();
      relay(conn);
      _exit(0);
    }
    if (pid < 0) {
      /* Usually the sandbox's pids limit: say so instead of hanging up silently. */
      static const char message[] = "cannot start a process: the sandbox is at its process limit";
      unsigned char header[HEADER_BYTES] = {'F', 0, 0, 0, (unsigned char)(sizeof message - 1)};
      if (write(conn, header, sizeof header) == (ssize_t)sizeof header) {
        ssize_t ignored_result = write(conn, message, sizeof message - 1);
        (void)ignored_result;
      }
    }
    close(conn);
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--join-from-stdin") == 0) return join_from_stdin();
  if (argc > 1 && strcmp(argv[1], "--join") == 0) return join_and_exec(argc, argv, 3);
  if (argc > 1 && strcmp(argv[1], "--deny-routes") == 0) return deny_routes_main(argc, argv);
  if (argc > 1 && strcmp(argv[1], "--egress-setup") == 0) return egress_setup_main(argc, argv);
  if (argc > 1 && strcmp(argv[1], "--egress-relay") == 0) return egress_relay_main(argc, argv);
  if (argc > 1 && strncmp(argv[1], "--bg-", 5) == 0) return background_main(argc, argv);
  if (argc > 1 && (strcmp(argv[1], "--connect") == 0 || strcmp(argv[1], "--listen") == 0))
    return forward_main(argc, argv);
  if (argc > 1 && strcmp(argv[1], "--disk-usage") == 0) return disk_usage_main(argc, argv);
  if (argc == 3 && strcmp(argv[1], "--root") == 0) {
    root_init = 1;
    return serve(argv[2]);
  }
  if (argc > 1 && strcmp(argv[1], "--file") == 0) return file_ops_main(argc, argv);
  if (argc != 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: %s <socket path>\n", argv[0]);
    return 2;
  }
  return serve(argv[1]);
}

/* ---------- relay ---------- */

static void send_frame(int conn, char type, const void *payload, uint32_t length) {
  unsigned char header[HEADER_BYTES];
  header[0] = (unsigned char)type;
  put_u32(header + 1, length);
  if (write_fully(conn, header, sizeof header) == 0 && length > 0) write_fully(conn, payload, length);
}

static void fail_start(int conn, const char *message) {
  send_frame(conn, 'F', message, (uint32_t)strlen(message));
}

/* The descendants of `root` (all sessions and groups), from one scan of /proc. */
static size_t descendants(pid_t root, pid_t *found, size_t capacity) {
  size_t count = 0;
  DIR *proc = opendir("/proc");
  if (!proc) return 0;
  /* Up to 4096 (pid, ppid) pairs: the pids limit of a sandbox is far lower. */
  static pid_t pids[4096], parents[4096];
  size_t total = 0;
  struct dirent *entry;
  while ((entry = readdir(proc)) != NULL && total < 4096) {
    char *end;
    long pid = strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) continue;
    text[n] = '\0';
    char *close_paren = strrchr(text, ')');
    if (!close_paren) continue;
    char state;
    long ppid;
    if (sscanf(close_paren + 2, "%c %ld", &state, &ppid) != 2) continue;
    pids[total] = (pid_t)pid;
    parents[total] = (pid_t)ppid;
    total++;
  }
  closedir(proc);
  /* Breadth-first over the parent links; `found` doubles as the queue. */
  if (capacity == 0) return 0;
  found[count++] = root;
  for (size_t next = 0; next < count; next++) {
    for (size_t i = 0; i < total && count < capacity; i++) {
      if (parents[i] == found[next]) found[count++] = pids[i];
    }
  }
  return count;
}

/*
 * SIGKILLs the command, its process group and everything it started, also in other sessions.
 * Stopping the tree first keeps it from forking meanwhile.
 */
static void kill_tree(pid_t root, int root_reaped) {
  static pid_t tree[4096];
  if (!root_reaped) {
    size_t count = descendants(root, tree, sizeof tree / sizeof tree[0]);
    for (size_t i = 0; i < count; i++) kill(tree[i], SIGSTOP);
    count = descendants(root, tree, sizeof tree / sizeof tree[0]);
    for (size_t i = 0; i < count; i++) kill(tree[i], SIGKILL);
  }
  /* The group outlives its leader; a process group id is never reused while it has members. */
  kill(-root, SIGKILL);
}

static void exec_command(char **argv, char **envp, const char *cwd) {
  /* An empty cwd: the home of whoever runs it (a request for another user without a cwd). */
  if (*cwd == '\0') {
    cwd = "/";
    for (char **entry = envp; *entry; entry++)
      if (strncmp(*entry, "HOME=", 5) == 0 && access(*entry + 5, X_OK) == 0) cwd = *entry + 5;
  }
  if (chdir(cwd) != 0) {
    dprintf(STDERR_FILENO, "polydev: cannot run %s: the working directory %s does not exist\n", argv[0],
            cwd);
    _exit(127);
  }
  /* Only stdio crosses into the command; the relay's own descriptors are close-on-exec, and this
   * makes sure of it whatever a future change opens. */
  close_descriptors_from(3);
  environ = envp;
  execvp(argv[0], argv);
  int error = errno;
  if (error == ENOENT) dprintf(STDERR_FILENO, "polydev: %s: command not found\n", argv[0]);
  else if (error == EACCES) dprintf(STDERR_FILENO, "polydev: %s: permission denied\n", argv[0]);
  else dprintf(STDERR_FILENO, "polydev: cannot run %s: %s\n", argv[0], strerror(error));
  _exit(error == EACCES ? 126 : 127);
}

/*
 * Bytes read from the connection and not yet handled. File-scope because one connection serves
 * one request after another: what follows a request's 'D' is the start of the next one.
 */
static unsigned char incoming[IN_CAPACITY];
static size_t in_len = 0;

/* Fills `buffer` from `incoming` first, then from the (blocking) connection. */
static int read_buffered(int conn, void *buffer, size_t length) {
  size_t from_buffer = length < in_len ? length : in_len;
  memcpy(buffer, incoming, from_buffer);
  memmove(incoming, incoming + from_buffer, in_len - from_buffer);
  in_len -= from_buffer;
  return read_fully(conn, (unsigned char *)buffer + from_buffer, length - from_buffer);
}

/*
 * After the exit frame: drop whatever the host still sent for that process (stdin it had
 * queued) up to its 'D' frame, which says it is done with it. Returns 0 once the connection
 * is ready for the next request, -1 if it ended.
 */
static int skip_to_done(int conn) {
  for (;;) {
    while (in_len >= HEADER_BYTES) {
      uint32_t length = get_u32(incoming + 1);
      if (length > CHUNK_BYTES) return -1;
      if (in_len < HEADER_BYTES + length) break;
      unsigned char type = incoming[0];
      memmove(incoming, incoming + HEADER_BYTES + length, in_len - HEADER_BYTES - length);
      in_len -= HEADER_BYTES + length;
      if (type == 'D') return 0;
    }
    ssize_t got = read(conn, incoming + in_len, IN_CAPACITY - in_len);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    in_len += (size_t)got;
  }
}

static int serve_one(int conn);

/* One connection, one request after another (the host keeps idle connections for reuse). */
static void relay(int conn) {
  signal(SIGPIPE, SIG_IGN);
  while (serve_one(conn) == 0) {
  }
}

struct request {
  char *user; /* from a 'U' frame before the request, owned; NULL: the init's own user */
  char *text; /* the payload, owned */
  char **argv, **envp;
  const char *cwd;
  int tty;
  unsigned short cols, rows;
};

static void free_request(struct request *r) {
  free(r->user);
  free(r->argv);
  free(r->envp);
  free(r->text);
}

/* Reads and parses one request; 0, or -1 after telling the host why (or when it is gone). */
static int read_request(int conn, struct request *r) {
  memset(r, 0, sizeof *r);
  unsigned char header[HEADER_BYTES];
  if (read_buffered(conn, header, sizeof header) != 0) return -1;
  uint32_t length = get_u32(header + 1);
  if (header[0] == 'U') {
    if (length == 0 || length > 255) {
      fail_start(conn, "malformed request");
      return -1;
    }
    r->user = calloc(1, length + 1);
    if (!r->user || read_buffered(conn, r->user, length) != 0) return -1;
    if (memchr(r->user, '\0', length)) {
      fail_start(conn, "malformed request");
      return -1;
    }
    if (read_buffered(conn, header, sizeof header) != 0) return -1;
    length = get_u32(header + 1);
  }
  r->tty = header[0] == 'T';
  if ((header[0] != 'R' && header[0] != 'T') || length < (r->tty ? 12u : 8u) || length > MAX_REQUEST_BYTES) {
    fail_start(conn, "malformed request");
    return -1;
  }
  r->text = malloc(length + 1);
  if (!r->text || read_buffered(conn, r->text, length) != 0) return -1;
  r->text[length] = '\0';
  char *body = r->text;
  if (r->tty) {
    const unsigned char *size = (const unsigned char *)r->text;
    r->cols = (unsigned short)((size[0] << 8) | size[1]);
    r->rows = (unsigned short)((size[2] << 8) | size[3]);
    body += 4;
    length -= 4;
  }
  uint32_t argc = get_u32((unsigned char *)body), envc = get_u32((unsigned char *)body + 4);
  if (argc == 0 || argc > length || envc > length) {
    fail_start(conn, "malformed request");
    return -1;
  }
  r->argv = calloc((size_t)argc + 1, sizeof *r->argv);
  r->envp = calloc((size_t)envc + 1, sizeof *r->envp);
  if (!r->argv || !r->envp) {
    fail_start(conn, "out of memory");
    return -1;
  }
  char *cursor = body + 8, *end = body + length;
  for (uint32_t i = 0; i < argc + envc + 1; i++) {
    char *nul = memchr(cursor, '\0', (size_t)(end - cursor));
    if (!nul) {
      fail_start(conn, "malformed request");
      return -1;
    }
    if (i < argc) r->argv[i] = cursor;
    else if (i < argc + envc) r->envp[i - argc] = cursor;
    else r->cwd = cursor;
    cursor = nul + 1;
  }
  return 0;
}

/* The command's end of the relay: pipes, or a terminal allocated in the sandbox's own devpts. */
struct started {
  pid_t child;
  int stdin_fd, stdout_fd, stderr_fd; /* the relay's ends; stderr -1 on a terminal */
  int master;                         /* the terminal, or -1 */
};

static int start_on_pipes(int conn, const struct request *r, struct started *s) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    fail_start(conn, "cannot start a process: out of file descriptors");
    return -1;
  }
  pid_t child = fork();
  if (child < 0) {
    fail_start(conn, "cannot start a process: the sandbox is at its process limit");
    return -1;
  }
  if (child == 0) {
    /* Its own session and process group: one kill(-pid) reaches everything it starts there. */
    setsid();
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    signal(SIGPIPE, SIG_DFL);
    char **envp = r->envp;
    if (r->user && switch_user(r->user, &envp, -1) != 0) _exit(126);
    exec_command(r->argv, envp, r->cwd);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  *s = (struct started){.child = child, .stdin_fd = in[1], .stdout_fd = out[0], .stderr_fd = err[0], .master = -1};
  return 0;
}

static int start_on_terminal(int conn, const struct request *r, struct started *s) {
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  char name[128];
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, name, sizeof name) != 0) {
    fail_start(conn, "cannot open a terminal in the sandbox");
    if (master >= 0) close(master);
    return -1;
  }
  struct winsize size = {.ws_row = r->rows ? r->rows : 24, .ws_col = r->cols ? r->cols : 80};
  ioctl(master, TIOCSWINSZ, &size);
  int input = fcntl(master, F_DUPFD_CLOEXEC, 0);
  if (input < 0) {
    close(master);
    fail_start(conn, "cannot start a process: out of file descriptors");
    return -1;
  }
  pid_t child = fork();
  if (child < 0) {
    close(master);
    close(input);
    fail_start(conn, "cannot start a process: the sandbox is at its process limit");
    return -1;
  }
  if (child == 0) {
    /* A new session whose controlling terminal is the new one: job control works inside. */
    setsid();
    int slave = open(name, O_RDWR);
    if (slave < 0) _exit(127);
    ioctl(slave, TIOCSCTTY, 0);
    dup2(slave, STDIN_FILENO);
    dup2(slave, STDOUT_FILENO);
    dup2(slave, STDERR_FILENO);
    signal(SIGPIPE, SIG_DFL);
    char **envp = r->envp;
    if (r->user && switch_user(r->user, &envp, slave) != 0) _exit(126);
    exec_command(r->argv, envp, r->cwd);
  }
  *s = (struct started){.child = child, .stdin_fd = input, .stdout_fd = master, .stderr_fd = -1, .master = master};
  return 0;
}

/* A terminal's hangup, as when its window closes: its session and foreground group get SIGHUP. */
static void hang_up(const struct started *s) {
  if (s->master >= 0) {
    pid_t foreground = tcgetpgrp(s->master);
    if (foreground > 0) kill(-foreground, SIGHUP);
  }
  kill(-s->child, SIGHUP);
  kill(s->child, SIGHUP);
}

static int64_t monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Serves one request; 0 when the connection may carry another, -1 when it is done. */
static int serve_one(int conn) {
  set_blocking(conn);
  struct request r;
  if (read_request(conn, &r) != 0) {
    free_request(&r);
    return -1;
  }
  struct started s;
  if ((r.tty ? start_on_terminal(conn, &r, &s) : start_on_pipes(conn, &r, &s)) != 0) {
    free_request(&r);
    return -1;
  }
  free_request(&r);
  pid_t child = s.child;
  int stdin_fd = s.stdin_fd, stdout_fd = s.stdout_fd, stderr_fd = s.stderr_fd;
  set_nonblocking(stdin_fd);
  set_nonblocking(stdout_fd);
  if (stderr_fd >= 0) set_nonblocking(stderr_fd);
  set_nonblocking(conn);
  int exit_watch = (int)syscall(SYS_pidfd_open, child, 0);

  static unsigned char outgoing[OUT_CAPACITY];
  size_t out_len = 0, out_sent = 0;
  /* The stdin bytes being written to the command: a slice of `incoming`. */
  size_t stdin_offset = 0, stdin_left = 0;
  int conn_open = 1, reaped = 0, status = 0, killed = 0;
  int stdin_close_pending = 0;
  /* Terminal only: when the host hung up, and when the grace ends. */
  int64_t hangup_deadline = -1;

  /*
   * Until the command has exited and its output is relayed (for a terminal: until the shell
   * exited, whatever else still holds the terminal); with nobody left to tell, until it exited.
   */
  while ((s.master >= 0 ? !reaped : (stdout_fd >= 0 || stderr_fd >= 0 || !reaped)) && (conn_open || !reaped)) {
    if (!reaped && exit_watch < 0 && waitpid(child, &status, WNOHANG) == child) reaped = 1;

    /* Handle the complete frames at the start of `incoming`, unless stdin is still busy. */
    while (conn_open && stdin_left == 0 && !stdin_close_pending && in_len >= HEADER_BYTES) {
      uint32_t frame_length = get_u32(incoming + 1);
      if (frame_length > CHUNK_BYTES) {
        conn_open = 0; /* a confused peer: treat as gone */
        break;
      }
      if (in_len < HEADER_BYTES + frame_length) break;
      unsigned char type = incoming[0];
      const unsigned char *payload = incoming + HEADER_BYTES;
      if (type == 'I' && stdin_fd >= 0 && frame_length > 0) {
        stdin_offset = HEADER_BYTES;
        stdin_left = frame_length;
        break; /* the frame stays in place until written; consumed below */
      }
      if (type == 'i') stdin_close_pending = 1;
      else if (type == 'S' && frame_length == 1 && !reaped && payload[0] > 0 && payload[0] < NSIG)
        kill(child, payload[0]);
      else if (type == 'W' && frame_length == 4 && s.master >= 0) {
        struct winsize size = {.ws_col = (unsigned short)((payload[0] << 8) | payload[1]),
                               .ws_row = (unsigned short)((payload[2] << 8) | payload[3])};
        if (size.ws_col > 0 && size.ws_row > 0) ioctl(s.master, TIOCSWINSZ, &size);
      } else if (type == 'K' && !killed) {
        killed = 1;
        kill_tree(child, reaped);
      }
      memmove(incoming, incoming + HEADER_BYTES + frame_length, in_len - HEADER_BYTES - frame_length);
      in_len -= HEADER_BYTES + frame_length;
    }
    if (stdin_close_pending && stdin_left == 0) {
      /* A terminal's input is its master: end-of-input there is the EOF character instead. */
      if (s.master >= 0) {
        if (stdin_fd >= 0) {
          ssize_t ignored_result = write(stdin_fd, "\x04", 1);
          (void)ignored_result;
        }
      } else if (stdin_fd >= 0) {
        close(stdin_fd);
        stdin_fd = -1;
      }
      stdin_close_pending = 0;
      continue; /* more frames may follow */
    }

    if (!conn_open && !killed) {
      if (s.master >= 0 && hangup_deadline < 0) {
        /* A terminal without its client is hung up, then killed after a grace period. */
        hang_up(&s);
        hangup_deadline = monotonic_ms() + HANGUP_GRACE_MS;
      } else if (s.master < 0 || monotonic_ms() >= hangup_deadline) {
        killed = 1;
        kill_tree(child, reaped);
      }
    }

    struct pollfd fds[5];
    int n = 0, conn_at = -1, stdin_at = -1, stdout_at = -1, stderr_at = -1, exit_at = -1;
    short conn_events = 0;
    if (conn_open && stdin_left == 0 && in_len < IN_CAPACITY) conn_events |= POLLIN;
    if (out_len > out_sent) conn_events |= POLLOUT;
    if (conn_open) {
      conn_at = n;
      fds[n++] = (struct pollfd){.fd = conn, .events = conn_events};
    }
    if (stdin_fd >= 0 && stdin_left > 0) {
      stdin_at = n;
      fds[n++] = (struct pollfd){.fd = stdin_fd, .events = POLLOUT};
    }
    /* A pipe is read only when the outgoing buffer is empty: that is the back-pressure. With
     * nobody to relay to, output is drained into nothing so the command never blocks on it. */
    int room = (out_len == out_sent && conn_open) || !conn_open;
    if (!conn_open) out_len = out_sent = 0;
    if (stdout_fd >= 0 && room) {
      stdout_at = n;
      fds[n++] = (struct pollfd){.fd = stdout_fd, .events = POLLIN};
    }
    if (stderr_fd >= 0 && room) {
      stderr_at = n;
      fds[n++] = (struct pollfd){.fd = stderr_fd, .events = POLLIN};
    }
    if (!reaped && exit_watch >= 0) {
      exit_at = n;
      fds[n++] = (struct pollfd){.fd = exit_watch, .events = POLLIN};
    }
    int timeout = -1;
    if (exit_watch < 0 && !reaped) timeout = 50;
    if (hangup_deadline >= 0 && !killed) {
      int64_t left = hangup_deadline - monotonic_ms();
      timeout = left < 0 ? 0 : (int)left;
    }
    if (poll(fds, (nfds_t)n, timeout) < 0) {
      if (errno == EINTR) continue;
      break;
    }

    if (conn_at >= 0) {
      short revents = fds[conn_at].revents;
      if (revents & POLLOUT) {
        ssize_t sent = write(conn, outgoing + out_sent, out_len - out_sent);
        if (sent > 0) out_sent += (size_t)sent;
        else if (sent < 0 && errno != EAGAIN && errno != EINTR) conn_open = 0;
        if (out_sent == out_len) out_len = out_sent = 0;
      }
      if (revents & POLLIN) {
        ssize_t got = read(conn, incoming + in_len, IN_CAPACITY - in_len);
        if (got > 0) in_len += (size_t)got;
        else if (got == 0 || (errno != EAGAIN && errno != EINTR)) conn_open = 0;
      } else if (revents & (POLLHUP | POLLERR)) {
        conn_open = 0;
      }
    }
    if (stdin_at >= 0 && fds[stdin_at].revents) {
      ssize_t written = write(stdin_fd, incoming + stdin_offset, stdin_left);
      if (written > 0) {
        stdin_offset += (size_t)written;
        stdin_left -= (size_t)written;
      } else if (written < 0 && errno != EAGAIN && errno != EINTR) {
        /* The command closed its stdin: what is left of the client's input is dropped. */
        close(stdin_fd);
        stdin_fd = -1;
        stdin_offset += stdin_left;
        stdin_left = 0;
      }
      if (stdin_left == 0) {
        size_t consumed = stdin_offset;
        memmove(incoming, incoming + consumed, in_len - consumed);
        in_len -= consumed;
        stdin_offset = 0;
      }
    }
    int *pipes[2] = {&stdout_fd, &stderr_fd};
    int at[2] = {stdout_at, stderr_at};
    for (int k = 0; k < 2; k++) {
      if (at[k] < 0 || !fds[at[k]].revents || *pipes[k] < 0) continue;
      if (out_len != 0 && conn_open) continue;
      ssize_t got = read(*pipes[k], outgoing + HEADER_BYTES, CHUNK_BYTES);
      if (got > 0 && conn_open) {
        outgoing[0] = k == 0 ? 'O' : 'E';
        put_u32(outgoing + 1, (uint32_t)got);
        out_len = HEADER_BYTES + (size_t)got;
        out_sent = 0;
      } else if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        /* EOF, or EIO from a terminal whose every other end is closed. */
        if (*pipes[k] != s.master) close(*pipes[k]);
        *pipes[k] = -1;
      }
    }
    if (exit_at >= 0 && fds[exit_at].revents && waitpid(child, &status, WNOHANG) == child) reaped = 1;
  }

  /* A terminal's shell exited: what it wrote last is relayed, then anything still on the
   * terminal is hung up, like a terminal window that closes. */
  if (s.master >= 0) {
    if (conn_open && stdout_fd >= 0) {
      if (out_len > out_sent) write_fully(conn, outgoing + out_sent, out_len - out_sent);
      out_len = out_sent = 0;
      for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t got = read(s.master, outgoing + HEADER_BYTES, CHUNK_BYTES);
        if (got <= 0) break;
        outgoing[0] = 'O';
        put_u32(outgoing + 1, (uint32_t)got);
        if (write_fully(conn, outgoing, HEADER_BYTES + (size_t)got) != 0) {
          conn_open = 0;
          break;
        }
      }
    }
    kill(-child, SIGHUP);
    close(s.master);
    s.master = -1;
    stdout_fd = -1;
  }
  if (stdin_fd >= 0) close(stdin_fd);
  if (stdout_fd >= 0) close(stdout_fd);
  if (stderr_fd >= 0) close(stderr_fd);
  if (exit_watch >= 0) close(exit_watch);
  if (!conn_open) return -1;
  if (out_len > out_sent) write_fully(conn, outgoing + out_sent, out_len - out_sent);
  unsigned char exit_payload[8];
  put_u32(exit_payload, WIFEXITED(status) ? (uint32_t)WEXITSTATUS(status) : (uint32_t)-1);
  put_u32(exit_payload + 4, WIFSIGNALED(status) ? (uint32_t)WTERMSIG(status) : 0);
  send_frame(conn, 'X', exit_payload, sizeof exit_payload);
  set_blocking(conn);
  return skip_to_done(conn);
}
