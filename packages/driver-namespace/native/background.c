/*
 * Background processes, kept entirely inside the sandbox: the host stores nothing per process,
 * so nothing a process prints can grow a host file, and the output is charged to the sandbox's
 * own memory (BG_ROOT is on its /run tmpfs) and capped per process.
 *
 * The host runs these subcommands of the init binary through ordinary exec requests:
 *   --bg-start <id> <cap bytes> -- <argv>...   environment and working directory: the request's
 *   --bg-list                                  one JSON object per line
 *   --bg-get <id>                              one JSON object
 *   --bg-attach <id> <offset> <follow 0|1>     the output from a byte offset, following it until
 *                                              the process has exited when asked to
 *   --bg-signal <id> <signal number>           to the command's process group
 * Exit codes: 0 done, 2 usage, 3 no such process, 4 not running, 5 the id exists, 1 otherwise.
 *
 * Per process, BG_ROOT/<id>/ holds: argv (NUL-separated), started (ms since the epoch),
 * pid ("<pid> <start time>"), output (stdout and stderr, at most <cap> bytes) and, once it ended,
 * exit ("<exit code or -1> <signal number or 0>"). A keeper process (not dumpable, its own
 * session) forks the command, copies its output into the file and records its exit, so neither
 * the host nor its connection has to stay for the output to be kept.
 *
 * Everything here runs as the sandbox user inside the sandbox; the host parses what it prints
 * as untrusted input.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

extern char **environ;

#define EXIT_USAGE 2
#define EXIT_NOT_FOUND 3
#define EXIT_NOT_RUNNING 4
#define EXIT_EXISTS 5
#define MAX_ARGV_BYTES (1024 * 1024)

static int valid_id(const char *id) {
  size_t length = strlen(id);
  if (length == 0 || length > 64) return 0;
  for (size_t i = 0; i < length; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static void path_of(char *out, size_t size, const char *id, const char *name) {
  snprintf(out, size, "%s/%s%s%s", BG_ROOT, id, name[0] ? "/" : "", name);
}

/* Reads a small file whole (NUL-terminated); the length, or -1. */
static ssize_t read_small(const char *path, char *buffer, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  size_t length = 0;
  while (length < size - 1) {
    ssize_t n = read(fd, buffer + length, size - 1 - length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    length += (size_t)n;
  }
  close(fd);
  buffer[length] = '\0';
  return (ssize_t)length;
}

/* Written under a temporary name and renamed: a reader sees all of it or nothing. */
static int write_atomically(const char *path, const char *text, size_t length) {
  char temporary[512];
  snprintf(temporary, sizeof temporary, "%s.tmp", path);
  int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  int ok = write_fully(fd, text, length) == 0;
  close(fd);
  if (!ok || rename(temporary, path) != 0) return -1;
  return 0;
}

/* Start time in clock ticks since boot, and whether it is a zombie; 0 when gone. */
static unsigned long long start_time_of(pid_t pid, int *zombie) {
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if (read_small(path, text, sizeof text) <= 0) return 0;
  char *after = strrchr(text, ')');
  if (!after) return 0;
  char state = 0;
  unsigned long long start = 0;
  /* state is field 3; starttime is field 22. */
  if (sscanf(after + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
             &state, &start) != 2)
    return 0;
  if (zombie) *zombie = state == 'Z';
  return start;
}

static void json_string(FILE *out, const char *text, size_t length) {
  fputc('"', out);
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c < 0x20 || c == 0x7f) fprintf(out, "\\u%04x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

struct state {
  int running;
  int exited;
  long exit_code; /* valid when exited and not killed by a signal */
  int signal_number;
  int has_code;
};

static struct state state_of(const char *id) {
  struct state s = {0};
  char path[512], text[256];
  path_of(path, sizeof path, id, "exit");
  if (read_small(path, text, sizeof text) > 0) {
    long code = 0;
    int signo = 0;
    if (sscanf(text, "%ld %d", &code, &signo) == 2) {
      s.exited = 1;
      s.has_code = code >= 0;
      s.exit_code = code;
      s.signal_number = signo;
      return s;
    }
  }
  path_of(path, sizeof path, id, "pid");
  long pid = 0;
  unsigned long long recorded = 0;
  if (read_small(path, text, sizeof text) > 0 && sscanf(text, "%ld %llu", &pid, &recorded) == 2 && pid > 0) {
    /* A zombie is still running here: its keeper records the exit before it reaps it. */
    if (start_time_of((pid_t)pid, NULL) == recorded) {
      s.running = 1;
      return s;
    }
  }
  /* It may have recorded its exit between the first look and the liveness check. */
  path_of(path, sizeof path, id, "exit");
  if (read_small(path, text, sizeof text) > 0) return state_of(id);
  /* Gone without a recorded exit: its keeper was killed, so the exit code is unknown. */
  s.exited = 1;
  s.signal_number = SIGKILL;
  return s;
}

/* One line of JSON describing the process; 0, or EXIT_NOT_FOUND. */
static int describe(FILE *out, const char *id) {
  char path[512];
  static char argv_text[MAX_ARGV_BYTES + 1];
  path_of(path, sizeof path, id, "argv");
  ssize_t argv_length = read_small(path, argv_text, sizeof argv_text);
  if (argv_length < 0) return EXIT_NOT_FOUND;
  char started[64] = "0";
  path_of(path, sizeof path, id, "started");
  read_small(path, started, sizeof started);
  struct stat output;
  path_of(path, sizeof path, id, "output");
  long long output_bytes = stat(path, &output) == 0 ? (long long)output.st_size : 0;
  struct state s = state_of(id);

  fputs("{\"id\":", out);
  json_string(out, id, strlen(id));
  fputs(",\"argv\":[", out);
  for (ssize_t at = 0, first = 1; at < argv_length; first = 0) {
    size_t length = strnlen(argv_text + at, (size_t)(argv_length - at));
    if (!first) fputc(',', out);
    json_string(out, argv_text + at, length);
    at += (ssize_t)length + 1;
  }
  fprintf(out, "],\"startedAt\":%lld,\"state\":\"%s\",\"exitCode\":", atoll(started),
          s.running ? "running" : "exited");
  if (s.exited && s.has_code) fprintf(out, "%ld", s.exit_code);
  else fputs("null", out);
  fputs(",\"signal\":", out);
  if (s.exited && s.signal_number > 0) fprintf(out, "%d", s.signal_number);
  else fputs("null", out);
  fprintf(out, ",\"outputBytes\":%lld}\n", output_bytes);
  return 0;
}

/* ---------- start ---------- */

static void append_output(int fd, const char *data, size_t length, long long cap, long long *written,
                          int *said_full) {
  if (*written < cap) {
    size_t room = (size_t)(cap - *written);
    size_t kept = length < room ? length : room;
    if (write_fully(fd, data, kept) == 0) *written += (long long)kept;
    if (kept == length) return;
  }
  if (!*said_full) {
    *said_full = 1;
    char note[160];
    int n = snprintf(note, sizeof note,
                     "\n[polydev: this process's output reached its limit of %lld bytes; the rest is discarded]\n",
                     cap);
    if (n > 0) write_fully(fd, note, (size_t)n);
  }
}

/* The keeper: runs the command, keeps its output, records its exit. Never returns. */
static void keep(const char *id, char **argv, long long cap, int ready_fd, int output_fd) {
  setsid();
  prctl(PR_SET_DUMPABLE, 0);
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0)
    for (int fd = 0; fd <= 2; fd++) dup2(null_fd, fd);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) _exit(1);
  pid_t child = fork();
  if (child < 0) {
    static const char message[] = "polydev: cannot start the process: the sandbox is at its process limit\n";
    write_fully(output_fd, message, sizeof message - 1);
    char path[512];
    path_of(path, sizeof path, id, "exit");
    write_atomically(path, "126 0\n", 6);
    _exit(1);
  }
  if (child == 0) {
    setsid();
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    for (int signo = 1; signo < NSIG; signo++)
      if (signo != SIGKILL && signo != SIGSTOP) signal(signo, SIG_DFL);
    close_descriptors_from(3);
    execvp(argv[0], argv);
    int error = errno;
    if (error == ENOENT) dprintf(STDERR_FILENO, "polydev: %s: command not found\n", argv[0]);
    else dprintf(STDERR_FILENO, "polydev: cannot run %s: %s\n", argv[0], strerror(error));
    _exit(error == EACCES ? 126 : 127);
  }
  close(out[1]);
  char path[512], text[96];
  int zombie = 0;
  unsigned long long start = start_time_of(child, &zombie);
  int length = snprintf(text, sizeof text, "%d %llu\n", (int)child, start);
  path_of(path, sizeof path, id, "pid");
  write_atomically(path, text, (size_t)length);
  ssize_t ignored_result = write(ready_fd, "1", 1);
  (void)ignored_result;
  close(ready_fd);

  int pipe_fd = out[0];
  set_nonblocking(pipe_fd);
  int exit_watch = (int)syscall(SYS_pidfd_open, child, 0);
  static char buffer[64 * 1024];
  long long written = 0;
  int said_full = 0, recorded = 0;
  while (pipe_fd >= 0 || !recorded) {
    struct pollfd fds[2];
    nfds_t n = 0;
    if (pipe_fd >= 0) fds[n++] = (struct pollfd){.fd = pipe_fd, .events = POLLIN};
    if (!recorded && exit_watch >= 0) fds[n++] = (struct pollfd){.fd = exit_watch, .events = POLLIN};
    if (poll(fds, n, exit_watch >= 0 || recorded ? -1 : 100) < 0 && errno != EINTR) break;
    if (pipe_fd >= 0) {
      ssize_t got = read(pipe_fd, buffer, sizeof buffer);
      if (got > 0) append_output(output_fd, buffer, (size_t)got, cap, &written, &said_full);
      else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(pipe_fd);
        pipe_fd = -1;
      }
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (!recorded && waitid(P_PID, (id_t)child, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == child) {
      /* What it wrote before it exited is kept before the exit is recorded: a reader that sees
       * the exit and then reaches the end of the output has seen all of it. */
      while (pipe_fd >= 0) {
        ssize_t got = read(pipe_fd, buffer, sizeof buffer);
        if (got > 0) append_output(output_fd, buffer, (size_t)got, cap, &written, &said_full);
        else {
          if (got == 0) {
            close(pipe_fd);
            pipe_fd = -1;
          }
          break;
        }
      }
      int status = 0;
      waitpid(child, &status, WNOHANG | __WALL);
      long code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      int signo = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      length = snprintf(text, sizeof text, "%ld %d\n", code, signo);
      path_of(path, sizeof path, id, "exit");
      write_atomically(path, text, (size_t)length);
      recorded = 1;
    }
  }
  _exit(0);
}

static int start(int argc, char **argv) {
  if (argc < 6 || strcmp(argv[4], "--") != 0) return EXIT_USAGE;
  const char *id = argv[2];
  char *end;
  long long cap = strtoll(argv[3], &end, 10);
  if (!valid_id(id) || *end != '\0' || cap < 0) return EXIT_USAGE;
  char **command = argv + 5;
  mkdir(BG_ROOT, 0700);
  char path[512];
  path_of(path, sizeof path, id, "");
  if (mkdir(path, 0700) != 0) {
    if (errno == EEXIST) return EXIT_EXISTS;
    fprintf(stderr, "polydev: cannot keep a background process: %s\n", strerror(errno));
    return 1;
  }
  static char argv_text[MAX_ARGV_BYTES];
  size_t length = 0;
  for (char **arg = command; *arg; arg++) {
    size_t size = strlen(*arg) + 1;
    if (length + size > sizeof argv_text) break;
    memcpy(argv_text + length, *arg, size);
    length += size;
  }
  char started[32];
  int started_length = snprintf(started, sizeof started, "%lld\n", (long long)now_ms());
  path_of(path, sizeof path, id, "argv");
  int ok = write_atomically(path, argv_text, length) == 0;
  path_of(path, sizeof path, id, "started");
  ok = ok && write_atomically(path, started, (size_t)started_length) == 0;
  path_of(path, sizeof path, id, "output");
  int output_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int ready[2];
  if (!ok || output_fd < 0 || pipe2(ready, O_CLOEXEC) != 0) {
    fprintf(stderr, "polydev: cannot keep a background process: %s\n", strerror(errno));
    return 1;
  }
  pid_t keeper = fork();
  if (keeper < 0) {
    fprintf(stderr, "polydev: cannot start a process: the sandbox is at its process limit\n");
    return 1;
  }
  if (keeper == 0) {
    close(ready[0]);
    keep(id, command, cap, ready[1], output_fd);
  }
  close(ready[1]);
  close(output_fd);
  char answer;
  while (read(ready[0], &answer, 1) < 0 && errno == EINTR) {
  }
  close(ready[0]);
  return describe(stdout, id);
}

/* ---------- attach ---------- */

static int attach(const char *id, long long offset, int follow) {
  char path[512], exit_path[512], dir[512];
  path_of(path, sizeof path, id, "output");
  path_of(exit_path, sizeof exit_path, id, "exit");
  path_of(dir, sizeof dir, id, "");
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return EXIT_NOT_FOUND;
  /* Changes to the output or the exit file wake the follower; the timeout is only a backstop. */
  int watch = follow ? inotify_init1(IN_CLOEXEC | IN_NONBLOCK) : -1;
  if (watch >= 0) inotify_add_watch(watch, dir, IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF);
  static char buffer[64 * 1024];
  for (;;) {
    /* Checked before the read: output written before the exit is then always read. */
    int exited = follow && access(exit_path, F_OK) == 0;
    ssize_t got = pread(fd, buffer, sizeof buffer, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got > 0) {
      if (write_fully(STDOUT_FILENO, buffer, (size_t)got) != 0) return 0; /* the reader left */
      offset += got;
      continue;
    }
    if (got < 0 || !follow || exited) return 0;
    if (!state_of(id).running && access(exit_path, F_OK) != 0) return 0;
    struct pollfd waiting = {.fd = watch, .events = POLLIN};
    poll(&waiting, watch >= 0 ? 1 : 0, 1000);
    if (watch >= 0) {
      char events[4096];
      while (read(watch, events, sizeof events) > 0) {
      }
    }
  }
}

/* ---------- signal ---------- */

static int signal_process(const char *id, int signo) {
  char path[512], text[96];
  path_of(path, sizeof path, id, "argv");
  if (access(path, F_OK) != 0) return EXIT_NOT_FOUND;
  if (!state_of(id).running) return EXIT_NOT_RUNNING;
  path_of(path, sizeof path, id, "pid");
  long pid = 0;
  if (read_small(path, text, sizeof text) <= 0 || sscanf(text, "%ld", &pid) != 1 || pid <= 1)
    return EXIT_NOT_RUNNING;
  /* The command leads its own session and group: the group is everything it started there. */
  if (kill(-(pid_t)pid, signo) != 0 && kill((pid_t)pid, signo) != 0) return EXIT_NOT_RUNNING;
  return 0;
}

/* ---------- list ---------- */

static int list(void) {
  DIR *root = opendir(BG_ROOT);
  if (!root) return 0;
  struct dirent *entry;
  while ((entry = readdir(root)) != NULL) {
    if (entry->d_name[0] == '.' || !valid_id(entry->d_name)) continue;
    describe(stdout, entry->d_name);
  }
  closedir(root);
  return 0;
}

int background_main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  const char *mode = argv[1];
  int code = EXIT_USAGE;
  if (strcmp(mode, "--bg-start") == 0) code = start(argc, argv);
  else if (strcmp(mode, "--bg-list") == 0 && argc == 2) code = list();
  else if (strcmp(mode, "--bg-get") == 0 && argc == 3 && valid_id(argv[2])) code = describe(stdout, argv[2]);
  else if (strcmp(mode, "--bg-attach") == 0 && argc == 5 && valid_id(argv[2])) {
    char *end;
    long long offset = strtoll(argv[3], &end, 10);
    if (*end == '\0' && offset >= 0) code = attach(argv[2], offset, strcmp(argv[4], "1") == 0);
  } else if (strcmp(mode, "--bg-signal") == 0 && argc == 4 && valid_id(argv[2])) {
    char *end;
    long signo = strtol(argv[3], &end, 10);
    if (*end == '\0' && signo > 0 && signo < NSIG) code = signal_process(argv[2], (int)signo);
  }
  fflush(stdout);
  return code;
}
