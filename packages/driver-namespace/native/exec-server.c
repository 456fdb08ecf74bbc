/*
 * polydev exec server: the sandbox's pid 1 (bubblewrap's init) and the way the host starts
 * processes in it.
 *
 * Why it exists: starting a command from the host used to cost a fork of the (large) server
 * process plus an sh -> nsenter -> env exec chain, several milliseconds per exec. This init is
 * already inside every namespace and cgroup of the sandbox, so a fork of it (a few hundred KiB)
 * lands the command exactly where it must be, with nothing to join.
 *
 * As pid 1 it ignores the signals a sandbox user may send it, reaps every orphan, and prints
 * `ready` on stdout once it is listening (the readiness handshake). It listens on
 * argv[1], a unix socket in a directory the host bound into the sandbox; after the handshake the
 * host makes that directory root-owned, so nobody inside can replace the socket.
 *
 * Per connection it forks a relay, which reads one request, forks the command (its own session
 * and process group), and relays stdin/stdout/stderr, signals and the exit status over the
 * connection with poll(). The relay reads a pipe only when its outgoing buffer has room and
 * reads the socket only when its stdin buffer is empty, so back-pressure flows through the
 * socket buffers and nothing is ever held whole.
 *
 * Safety: it runs as the sandbox user with no capabilities, inside the sandbox's namespaces and
 * cgroups; a sandbox process that connects to it can only run what it could run anyway. The
 * host treats whatever it says as untrusted input.
 *
 * Wire format (both directions): frames of [type: 1 byte][length: 4 bytes big-endian][payload].
 *   host -> relay  'R' request: u32 argc, u32 envc, then argc + envc + 1 NUL-terminated strings
 *                      (argv..., "KEY=value"..., cwd); must be the first frame
 *                  'I' stdin bytes        'i' stdin end (no payload)
 *                  'S' signal the command: 1 byte signal number
 *                  'K' kill the command, its process group and its descendants (SIGKILL)
 *   relay -> host  'O' stdout bytes       'E' stderr bytes
 *                  'X' exit: i32 exit code (-1 when signalled), i32 signal number (0 if none);
 *                      sent once the command has exited and both its pipes are closed
 *                  'F' could not start: a message (e.g. the process limit is reached)
 * The host closing the connection counts as 'K'.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define HEADER_BYTES 5
/* Largest request (argv + env + cwd); the host refuses bigger ones before sending. */
#define MAX_REQUEST_BYTES (4u * 1024 * 1024)
/* Output is relayed in chunks of at most this; the socket buffer does the rest. */
#define CHUNK_BYTES (64u * 1024)
#define OUT_CAPACITY (CHUNK_BYTES + HEADER_BYTES)
/* Incoming frames are buffered up to this; the host sends stdin in chunks of at most 64 KiB. */
#define IN_CAPACITY (2u * CHUNK_BYTES + HEADER_BYTES)

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
 * setpriv: join the sandbox's cgroups, drop to its uid, exec bubblewrap. One small exec instead
 * of two, and bubblewrap is inside the cgroups before its first instruction, so the cgroup
 * namespace it creates is rooted at the sandbox's own cgroup.
 *   --join <uid> <gid> <n> <cgroup.procs file>... -- <program> <args>...
 */
static int join_and_exec(int argc, char **argv) {
  if (argc < 6) return 125;
  char *end;
  long uid = strtol(argv[2], &end, 10);
  if (*end != '\0' || uid <= 0) return 125;
  long gid = strtol(argv[3], &end, 10);
  if (*end != '\0' || gid <= 0) return 125;
  long count = strtol(argv[4], &end, 10);
  if (*end != '\0' || count < 0 || 5 + count + 1 >= argc) return 125;
  if (strcmp(argv[5 + count], "--") != 0) return 125;
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
  execv(program[0], program);
  fprintf(stderr, "polydev: cannot run %s: %s\n", program[0], strerror(errno));
  return 127;
}

/*
 * --join, with its arguments read from stdin (NUL-separated, up to EOF) once they are known:
 * the host starts this process ahead of time, so that creating a sandbox does not wait for the
 * (large) server process to fork. Before the --join arguments come the files to open, as root,
 * onto given descriptors (the sandbox's /etc files, this binary, its socket directory) and the
 * console log that becomes stderr:
 *   <console log> <n> (<fd> <path>)... --join <uid> <gid> <n> <cgroup.procs>... -- <program>...
 */
static int join_from_stdin(void) {
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
  for (long i = 0; i < files; i++) {
    long target = strtol(args[2 + 2 * i], &end, 10);
    if (*end != '\0' || target < 3 || target > 64) return 125;
    int fd = open(args[3 + 2 * i], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fprintf(stderr, "polydev: cannot open %s: %s\n", args[3 + 2 * i], strerror(errno));
      return 125;
    }
    if (fd != target && (dup2(fd, (int)target) < 0 || close(fd) != 0)) return 125;
    if (fd == target) fcntl(fd, F_SETFD, 0);
  }
  char **join = args + 2 + 2 * files;
  int join_count = count - 2 - 2 * (int)files;
  if (strcmp(join[0], "--join") != 0) return 125;
  /* join_and_exec expects argv[0] before "--join". */
  join[-1] = "polydev-exec-server";
  return join_and_exec(join_count + 1, join - 1);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--join-from-stdin") == 0) return join_from_stdin();
  if (argc > 1 && strcmp(argv[1], "--join") == 0) return join_and_exec(argc, argv);
  if (argc != 2) {
    fprintf(stderr, "usage: %s <socket path>\n", argv[0]);
    return 2;
  }
  /* A namespace's init only receives signals it handles; these are ignored explicitly as well so
   * the behaviour does not depend on that kernel rule. */
  int ignored[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE, SIGTTIN, SIGTTOU, SIGTSTP};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) set_handler(ignored[i], SIG_IGN);
  set_handler(SIGCHLD, reap_all);

  struct sockaddr_un address;
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  if (strlen(argv[1]) >= sizeof address.sun_path) {
    fprintf(stderr, "polydev init: socket path too long\n");
    return 2;
  }
  strcpy(address.sun_path, argv[1]);
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) {
    perror("polydev init: socket");
    return 1;
  }
  unlink(argv[1]);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 512) != 0) {
    perror("polydev init: listen");
    return 1;
  }
  if (write(STDOUT_FILENO, "ready\n", 6) != 6) return 1;
  /* The readiness pipe is closed by the host right after; nothing else may write to it. */
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    close(null_fd);
  }

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

/* ---------- relay ---------- */

static uint32_t get_u32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void put_u32(unsigned char *p, uint32_t value) {
  p[0] = (unsigned char)(value >> 24);
  p[1] = (unsigned char)(value >> 16);
  p[2] = (unsigned char)(value >> 8);
  p[3] = (unsigned char)value;
}

static int read_fully(int fd, void *buffer, size_t length) {
  unsigned char *p = buffer;
  while (length > 0) {
    ssize_t n = read(fd, p, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

static int write_fully(int fd, const void *buffer, size_t length) {
  const unsigned char *p = buffer;
  while (length > 0) {
    ssize_t n = write(fd, p, length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd waiting = {.fd = fd, .events = POLLOUT};
      poll(&waiting, 1, -1);
      continue;
    }
    if (n <= 0) return -1;
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

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
  if (chdir(cwd) != 0) {
    dprintf(STDERR_FILENO, "polydev: cannot run %s: the working directory %s does not exist\n", argv[0],
            cwd);
    _exit(127);
  }
  environ = envp;
  execvp(argv[0], argv);
  int error = errno;
  if (error == ENOENT) dprintf(STDERR_FILENO, "polydev: %s: command not found\n", argv[0]);
  else if (error == EACCES) dprintf(STDERR_FILENO, "polydev: %s: permission denied\n", argv[0]);
  else dprintf(STDERR_FILENO, "polydev: cannot run %s: %s\n", argv[0], strerror(error));
  _exit(error == EACCES ? 126 : 127);
}

static void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void set_blocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
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

/* Serves one request; 0 when the connection may carry another, -1 when it is done. */
static int serve_one(int conn) {
  set_blocking(conn);
  unsigned char header[HEADER_BYTES];
  if (read_buffered(conn, header, sizeof header) != 0) return -1;
  uint32_t length = get_u32(header + 1);
  if (header[0] != 'R' || length < 8 || length > MAX_REQUEST_BYTES) {
    fail_start(conn, "malformed request");
    return -1;
  }
  char *request = malloc(length + 1);
  if (!request || read_buffered(conn, request, length) != 0) return -1;
  request[length] = '\0';
  uint32_t argc = get_u32((unsigned char *)request), envc = get_u32((unsigned char *)request + 4);
  if (argc == 0 || argc > length || envc > length) {
    fail_start(conn, "malformed request");
    return -1;
  }
  char **argv = calloc((size_t)argc + 1, sizeof *argv);
  char **envp = calloc((size_t)envc + 1, sizeof *envp);
  if (!argv || !envp) {
    fail_start(conn, "out of memory");
    return -1;
  }
  char *cursor = request + 8, *end = request + length;
  const char *cwd = NULL;
  for (uint32_t i = 0; i < argc + envc + 1; i++) {
    char *nul = memchr(cursor, '\0', (size_t)(end - cursor));
    if (!nul) {
      fail_start(conn, "malformed request");
      return -1;
    }
    if (i < argc) argv[i] = cursor;
    else if (i < argc + envc) envp[i - argc] = cursor;
    else cwd = cursor;
    cursor = nul + 1;
  }

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
    exec_command(argv, envp, cwd);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  int stdin_fd = in[1], stdout_fd = out[0], stderr_fd = err[0];
  set_nonblocking(stdin_fd);
  set_nonblocking(stdout_fd);
  set_nonblocking(stderr_fd);
  set_nonblocking(conn);
  int exit_watch = (int)syscall(SYS_pidfd_open, child, 0);

  static unsigned char outgoing[OUT_CAPACITY];
  size_t out_len = 0, out_sent = 0;
  /* The stdin bytes being written to the command: a slice of `incoming`. */
  size_t stdin_offset = 0, stdin_left = 0;
  int conn_open = 1, reaped = 0, status = 0, killed = 0;
  int stdin_close_pending = 0;

  /* Until the command has exited and closed both pipes; with nobody left to tell, once it exited. */
  while ((stdout_fd >= 0 || stderr_fd >= 0 || !reaped) && (conn_open || !reaped)) {
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
      if (type == 'I' && stdin_fd >= 0 && frame_length > 0) {
        stdin_offset = HEADER_BYTES;
        stdin_left = frame_length;
        break; /* the frame stays in place until written; consumed below */
      }
      if (type == 'i') stdin_close_pending = 1;
      else if (type == 'S' && frame_length == 1 && !reaped) kill(child, incoming[HEADER_BYTES]);
      else if (type == 'K' && !killed) {
        killed = 1;
        kill_tree(child, reaped);
      }
      memmove(incoming, incoming + HEADER_BYTES + frame_length, in_len - HEADER_BYTES - frame_length);
      in_len -= HEADER_BYTES + frame_length;
    }
    if (stdin_close_pending && stdin_left == 0) {
      if (stdin_fd >= 0) close(stdin_fd);
      stdin_fd = -1;
      stdin_close_pending = 0;
      continue; /* more frames may follow */
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
    /* A pipe is read only when the outgoing buffer is empty: that is the back-pressure. */
    int room = out_len == out_sent && conn_open;
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
    if (!conn_open) {
      /* Nobody to relay to: end the command (once) and drain its pipes into nothing. */
      if (!killed) {
        killed = 1;
        kill_tree(child, reaped);
      }
      if (stdout_fd >= 0) fds[stdout_at = n++] = (struct pollfd){.fd = stdout_fd, .events = POLLIN};
      if (stderr_fd >= 0) fds[stderr_at = n++] = (struct pollfd){.fd = stderr_fd, .events = POLLIN};
      out_len = out_sent = 0;
    }
    if (poll(fds, (nfds_t)n, exit_watch < 0 && !reaped ? 50 : -1) < 0) {
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
        close(*pipes[k]);
        *pipes[k] = -1;
      }
    }
    if (exit_at >= 0 && fds[exit_at].revents && waitpid(child, &status, WNOHANG) == child) reaped = 1;
  }

  if (stdin_fd >= 0) close(stdin_fd);
  if (stdout_fd >= 0) close(stdout_fd);
  if (stderr_fd >= 0) close(stderr_fd);
  if (exit_watch >= 0) close(exit_watch);
  free(argv);
  free(envp);
  free(request);
  if (!conn_open) return -1;
  if (out_len > out_sent) write_fully(conn, outgoing + out_sent, out_len - out_sent);
  unsigned char exit_payload[8];
  put_u32(exit_payload, WIFEXITED(status) ? (uint32_t)WEXITSTATUS(status) : (uint32_t)-1);
  put_u32(exit_payload + 4, WIFSIGNALED(status) ? (uint32_t)WTERMSIG(status) : 0);
  send_frame(conn, 'X', exit_payload, sizeof exit_payload);
  set_blocking(conn);
  return skip_to_done(conn);
}
