/*
 * --file <op> <home> <path> [arg]: the agent's file operations, done by the sandbox's init binary
 * itself, so that they need nothing from the image (no shell, no coreutils: an Alpine or
 * distroless image works) and cost one fork+exec of a static binary.
 *
 *   stat <home> <path>                  one entry of the path (symlinks followed)
 *   list <home> <path>                  one entry per directory member (symlinks not followed)
 *   read <home> <path>                  "K" once the checks passed, then the file's bytes
 *   write <home> <path> <mode|->        stdin to a temporary name, then renamed over the path
 *                                       (a symlink there is replaced, not followed); the mode is
 *                                       octal, or "-" to keep an existing file's; prints its size
 *   mkdir <home> <path> <parents|single>
 *   remove <home> <path> <recursive|single>   a symlink is removed, never its target
 *   rename <home> <path> <new path>     both ends as symlinks themselves, like remove; a file or
 *                                       an empty directory of the same kind there is replaced
 *   snapshot <home> <path>              for watch: every entry up to 6 levels down, at most 20000
 *
 * An entry is "<type>\t<size>\t<mtime seconds.nanoseconds>\t<octal mode>\t<name>\0" (type as
 * find's %y: f d l b c p s); snapshot records carry the path below <path> instead of the name.
 * The answer is the exit code (packages/agent/src/file-scripts.ts, FileExit), a reason on stderr.
 *
 * Confinement: <path> is relative to <home> and is resolved inside the sandbox following every
 * symlink (like `realpath -m`); a result outside the home is refused with 91. The resolution is
 * then replayed from a descriptor of the home with no symlink allowed anywhere (openat2's
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or a walk of O_NOFOLLOW opens where openat2 is absent),
 * so a symlink swapped in between makes the operation fail or retry; it never reaches outside.
 * It all runs as the sandbox user inside the sandbox, so even a path outside the home is only a
 * file the sandbox could touch anyway: the check keeps the API's promise, not the host's safety.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

enum {
  EXIT_OUTSIDE_HOME = 91,
  EXIT_NOT_FOUND = 92,
  EXIT_NOT_DIRECTORY = 93,
  EXIT_IS_DIRECTORY = 94,
  EXIT_EXISTS = 95,
  EXIT_FAILED = 96,
};

#define MAX_SYMLINKS 40
/* A resolution raced by a symlink swap is started again this many times before it fails. */
#define MAX_ATTEMPTS 8
#define SNAPSHOT_DEPTH 6
#define SNAPSHOT_ENTRIES 20000

static char home[PATH_MAX];
static size_t home_length;
static int home_fd = -1;

static void __attribute__((noreturn)) fail(int code, const char *what, const char *path) {
  if (what != NULL) fprintf(stderr, "%s \"%s\": %s\n", what, path, strerror(errno));
  exit(code);
}

/*
 * Like `realpath -m`: every symlink followed, `..` applied to what the symlinks resolved to, and
 * missing components kept as they are. `out` is absolute and free of symlinks (as of now).
 */
static int canonicalize(const char *input, char out[PATH_MAX]) {
  static char pending[2 * PATH_MAX];
  char joined[2 * PATH_MAX];
  if (strlen(input) >= sizeof pending) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(pending, input);
  char *rest = pending;
  size_t length = 0;
  int links = 0;
  out[0] = '\0';
  while (*rest != '\0') {
    while (*rest == '/') rest++;
    if (*rest == '\0') break;
    char *end = strchrnul(rest, '/');
    size_t n = (size_t)(end - rest);
    if (n == 1 && rest[0] == '.') {
      rest = end;
      continue;
    }
    if (n == 2 && rest[0] == '.' && rest[1] == '.') {
      char *slash = strrchr(out, '/');
      if (slash != NULL) {
        *slash = '\0';
        length = (size_t)(slash - out);
      }
      rest = end;
      continue;
    }
    if (length + 1 + n >= PATH_MAX) {
      errno = ENAMETOOLONG;
      return -1;
    }
    out[length] = '/';
    memcpy(out + length + 1, rest, n);
    out[length + 1 + n] = '\0';
    rest = end;
    struct stat st;
    if (lstat(out, &st) == 0 && S_ISLNK(st.st_mode)) {
      if (++links > MAX_SYMLINKS) {
        errno = ELOOP;
        return -1;
      }
      char target[PATH_MAX];
      ssize_t t = readlink(out, target, sizeof target - 1);
      if (t < 0) return -1;
      size_t rest_length = strlen(rest);
      if ((size_t)t + rest_length + 1 >= sizeof joined) {
        errno = ENAMETOOLONG;
        return -1;
      }
      memcpy(joined, target, (size_t)t);
      memcpy(joined + t, rest, rest_length + 1);
      memcpy(pending, joined, (size_t)t + rest_length + 1);
      rest = pending;
      if (target[0] == '/') length = 0;
      out[length] = '\0';
      continue;
    }
    length += 1 + n;
  }
  if (length == 0) strcpy(out, "/");
  return 0;
}

/* The part of a canonical path below the home ("." for the home), or NULL when outside it. */
static const char *below_home(const char *path) {
  if (strcmp(path, home) == 0) return ".";
  if (home_length == 1) return path + 1;
  if (strncmp(path, home, home_length) == 0 && path[home_length] == '/') return path + home_length + 1;
  return NULL;
}

/* Resolves <home>/<rel> and refuses (exit 91) a result outside the home. */
static const char *resolve(const char *rel, char canonical[PATH_MAX]) {
  char input[2 * PATH_MAX];
  if ((size_t)snprintf(input, sizeof input, "%s/%s", home, rel) >= sizeof input) {
    errno = ENAMETOOLONG;
    fail(EXIT_FAILED, "cannot resolve", rel);
  }
  if (canonicalize(input, canonical) != 0) fail(EXIT_FAILED, "cannot resolve", rel);
  const char *below = below_home(canonical);
  if (below == NULL) exit(EXIT_OUTSIDE_HOME);
  return below;
}

/*
 * Opens `below` (relative to the home, no `..`) beneath the home with no symlink followed on the
 * way: ELOOP or EXDEV means something changed since it was resolved.
 */
static int open_beneath(const char *below, int flags, mode_t mode) {
  /* POLYDEV_FILE_OPS_NO_OPENAT2 (any value) takes the walk, as before Linux 5.6: for its tests. */
  static int use_openat2 = -1;
  if (use_openat2 < 0) use_openat2 = getenv("POLYDEV_FILE_OPS_NO_OPENAT2") == NULL;
  if (use_openat2) {
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, home_fd, below, &how, sizeof how);
    /* ENOSYS before 5.6; a container's seccomp profile may answer EPERM: walk instead. */
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return fd;
    use_openat2 = 0;
  }
  char copy[PATH_MAX];
  if (strlen(below) >= sizeof copy) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(copy, below);
  int dir = openat(home_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  char *save = NULL;
  char *name = strtok_r(copy, "/", &save);
  if (name == NULL || strcmp(name, ".") == 0) {
    int fd = openat(home_fd, ".", flags | O_CLOEXEC, mode);
    close(dir);
    return fd;
  }
  while (dir >= 0 && name != NULL) {
    char *next_name = strtok_r(NULL, "/", &save);
    if (strcmp(name, "..") == 0) {
      close(dir);
      errno = EXDEV;
      return -1;
    }
    int last = next_name == NULL;
    int next = openat(dir, name, (last ? flags : O_PATH | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC, mode);
    int error = errno;
    struct stat st;
    if (next < 0 && (error == ENOTDIR || error == ELOOP) && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode)) {
      error = ELOOP;
    }
    /* O_PATH | O_NOFOLLOW opens a symlink itself; openat2 would have refused it. */
    if (next >= 0 && (flags & O_PATH) && fstat(next, &st) == 0 && S_ISLNK(st.st_mode)) {
      close(next);
      next = -1;
      error = ELOOP;
    }
    close(dir);
    if (next < 0) {
      errno = error;
      return -1;
    }
    dir = next;
    name = next_name;
  }
  return dir;
}

/* Resolves and opens <home>/<rel>, again from the start while a symlink swap races it. */
static int open_resolved(const char *rel, int flags, char canonical[PATH_MAX]) {
  for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const char *below = resolve(rel, canonical);
    int fd = open_beneath(below, flags, 0);
    if (fd >= 0 || (errno != ELOOP && errno != EXDEV && errno != EAGAIN)) return fd;
  }
  errno = ELOOP;
  return -1;
}

/*
 * For operations on a name itself (write, remove, rename): the parent is resolved, the last name
 * kept, so a symlink there is replaced or removed rather than followed. `name` is empty when the
 * path is the home itself.
 */
static const char *resolve_parent(const char *rel, char parent[PATH_MAX], char name[NAME_MAX + 1]) {
  char copy[PATH_MAX];
  if (strlen(rel) >= sizeof copy) {
    errno = ENAMETOOLONG;
    fail(EXIT_FAILED, "cannot resolve", rel);
  }
  strcpy(copy, rel);
  size_t length = strlen(copy);
  while (length > 0 && copy[length - 1] == '/') copy[--length] = '\0';
  char *slash = strrchr(copy, '/');
  const char *base = slash == NULL ? copy : slash + 1;
  if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
    /* No last name to keep: the whole path resolved, then split. */
    char canonical[PATH_MAX];
    resolve(rel, canonical);
    if (strcmp(canonical, home) == 0) {
      name[0] = '\0';
      strcpy(parent, canonical);
      return ".";
    }
    char *last = strrchr(canonical, '/');
    snprintf(name, NAME_MAX + 1, "%s", last + 1);
    if (last == canonical) last[1] = '\0';
    else *last = '\0';
    strcpy(parent, canonical);
    const char *below = below_home(parent);
    if (below == NULL) exit(EXIT_OUTSIDE_HOME);
    return below;
  }
  if (strlen(base) > NAME_MAX) {
    errno = ENAMETOOLONG;
    fail(EXIT_FAILED, "cannot resolve", rel);
  }
  strcpy(name, base);
  if (slash == NULL) copy[0] = '\0';
  else *slash = '\0';
  return resolve(copy, parent);
}

/* The parent directory of <rel> (O_PATH), for the *at calls on its last name. */
static int open_parent(const char *rel, char name[NAME_MAX + 1], char parent[PATH_MAX]) {
  for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const char *below = resolve_parent(rel, parent, name);
    int fd = open_beneath(below, O_PATH | O_DIRECTORY, 0);
    if (fd >= 0 || (errno != ELOOP && errno != EXDEV && errno != EAGAIN)) return fd;
  }
  errno = ELOOP;
  return -1;
}

/* `mkdir -p` beneath the home, one O_NOFOLLOW step at a time; the last directory (O_PATH). */
static int make_directories(const char *below) {
  char copy[PATH_MAX];
  if (strlen(below) >= sizeof copy) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(copy, below);
  int dir = openat(home_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  char *save = NULL;
  for (char *name = strtok_r(copy, "/", &save); dir >= 0 && name != NULL; name = strtok_r(NULL, "/", &save)) {
    if (strcmp(name, ".") == 0) continue;
    if (mkdirat(dir, name, 0777) != 0 && errno != EEXIST) {
      int error = errno;
      close(dir);
      errno = error;
      return -1;
    }
    int next = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int error = errno;
    struct stat st;
    if (next < 0 && error == ENOTDIR && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
      error = ELOOP;
    }
    close(dir);
    errno = error;
    dir = next;
  }
  return dir;
}

static char type_letter(mode_t mode) {
  if (S_ISREG(mode)) return 'f';
  if (S_ISDIR(mode)) return 'd';
  if (S_ISLNK(mode)) return 'l';
  if (S_ISBLK(mode)) return 'b';
  if (S_ISCHR(mode)) return 'c';
  if (S_ISFIFO(mode)) return 'p';
  if (S_ISSOCK(mode)) return 's';
  return 'U';
}

static void print_entry(const struct stat *st, const char *name) {
  printf("%c\t%lld\t%lld.%09ld\t%o\t%s", type_letter(st->st_mode), (long long)st->st_size,
         (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (unsigned)(st->st_mode & 07777), name);
  putchar('\0');
}

static int finish_output(void) {
  if (fflush(stdout) != 0 || ferror(stdout)) fail(EXIT_FAILED, "cannot answer for", "stdout");
  return 0;
}

static int op_stat(const char *rel) {
  char canonical[PATH_MAX];
  int fd = open_resolved(rel, O_PATH, canonical);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) exit(EXIT_NOT_FOUND);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) fail(EXIT_FAILED, "cannot stat", rel);
  const char *slash = strrchr(canonical, '/');
  print_entry(&st, slash[1] == '\0' ? "/" : slash + 1);
  return finish_output();
}

/* A readable descriptor of the directory <rel>, after the not-found / not-a-directory checks. */
static int open_directory(const char *rel) {
  char canonical[PATH_MAX];
  int fd = open_resolved(rel, O_PATH, canonical);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) exit(EXIT_NOT_FOUND);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) fail(EXIT_FAILED, "cannot open", rel);
  if (!S_ISDIR(st.st_mode)) exit(EXIT_NOT_DIRECTORY);
  int dir = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) fail(EXIT_FAILED, "cannot open", rel);
  close(fd);
  return dir;
}

static int op_list(const char *rel) {
  DIR *dir = fdopendir(open_directory(rel));
  if (dir == NULL) fail(EXIT_FAILED, "cannot list", rel);
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue; /* gone meanwhile */
    print_entry(&st, entry->d_name);
  }
  closedir(dir);
  return finish_output();
}

static int snapshot_below(int dir_fd, char *prefix, size_t prefix_length, int depth, int *count) {
  DIR *dir = fdopendir(dir_fd);
  if (dir == NULL) {
    close(dir_fd);
    return 0;
  }
  struct dirent *entry;
  while (*count < SNAPSHOT_ENTRIES && (entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    size_t name_length = strlen(entry->d_name);
    if (prefix_length + name_length + 2 >= PATH_MAX) continue;
    size_t length = prefix_length;
    if (length > 0) prefix[length++] = '/';
    memcpy(prefix + length, entry->d_name, name_length + 1);
    printf("%c\t%lld\t%lld.%09ld\t%s", type_letter(st.st_mode), (long long)st.st_size, (long long)st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec, prefix);
    putchar('\0');
    (*count)++;
    if (S_ISDIR(st.st_mode) && depth < SNAPSHOT_DEPTH) {
      int child = openat(dirfd(dir), entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) snapshot_below(child, prefix, length + name_length, depth + 1, count);
    }
    prefix[prefix_length] = '\0';
  }
  closedir(dir);
  return 0;
}

static int op_snapshot(const char *rel) {
  static char prefix[PATH_MAX];
  int count = 0;
  prefix[0] = '\0';
  snapshot_below(open_directory(rel), prefix, 0, 1, &count);
  return finish_output();
}

static int op_read(const char *rel) {
  char canonical[PATH_MAX];
  int fd = open_resolved(rel, O_RDONLY | O_NOCTTY, canonical);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) exit(EXIT_NOT_FOUND);
  if (fd < 0 && errno == EACCES) {
    fprintf(stderr, "permission denied\n");
    exit(EXIT_FAILED);
  }
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) fail(EXIT_FAILED, "cannot read", rel);
  if (S_ISDIR(st.st_mode)) exit(EXIT_IS_DIRECTORY);
  /* One marker byte says the checks passed: what follows is the file, whatever its length. */
  if (write_fully(STDOUT_FILENO, "K", 1) != 0) return EXIT_FAILED;
  static char buffer[65536];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(EXIT_FAILED, "cannot read", rel);
    if (n == 0) return 0;
    if (write_fully(STDOUT_FILENO, buffer, (size_t)n) != 0) return EXIT_FAILED;
  }
}

/* The upload's temporary name, removed by any way out but the rename (a TERM from the host too). */
static volatile int upload_dir = -1;
static char upload_name[64];

static void remove_upload(void) {
  if (upload_dir >= 0) unlinkat(upload_dir, upload_name, 0);
}

static void abandon_upload(int signo) {
  (void)signo;
  remove_upload();
  _exit(EXIT_FAILED);
}

static void __attribute__((noreturn)) upload_failed(const char *what, const char *rel) {
  int error = errno;
  remove_upload();
  errno = error;
  fail(EXIT_FAILED, what, rel);
}

static int op_write(const char *rel, const char *mode_text) {
  long mode = -1;
  if (strcmp(mode_text, "-") != 0) {
    char *end;
    mode = strtol(mode_text, &end, 8);
    if (*end != '\0' || mode < 0 || mode > 07777) {
      fprintf(stderr, "bad mode \"%s\"\n", mode_text);
      return 2;
    }
  }
  char parent[PATH_MAX], name[NAME_MAX + 1];
  int dir = -1;
  for (int attempt = 0; attempt < MAX_ATTEMPTS && dir < 0; attempt++) {
    const char *below = resolve_parent(rel, parent, name);
    if (name[0] == '\0') exit(EXIT_IS_DIRECTORY);
    dir = make_directories(below);
    if (dir < 0 && errno != ELOOP) break;
  }
  if (dir < 0 && (errno == ENOTDIR || errno == EEXIST)) exit(EXIT_NOT_DIRECTORY);
  if (dir < 0) fail(EXIT_FAILED, "cannot make the directory of", rel);
  /* Like `[ -d ]`: a symlink to a directory counts as one (replacing it would surprise). */
  struct stat old;
  int exists = fstatat(dir, name, &old, 0) == 0;
  if (exists && S_ISDIR(old.st_mode)) exit(EXIT_IS_DIRECTORY);

  struct sigaction on_signal = {.sa_handler = abandon_upload};
  sigemptyset(&on_signal.sa_mask);
  sigaction(SIGTERM, &on_signal, NULL);
  sigaction(SIGHUP, &on_signal, NULL);
  sigaction(SIGINT, &on_signal, NULL);
  snprintf(upload_name, sizeof upload_name, ".polydev-upload-%d", (int)getpid());
  /* Set first: a TERM right after the create must find the name to remove. */
  upload_dir = dir;
  int fd = openat(dir, upload_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) {
    upload_dir = -1;
    fail(EXIT_FAILED, "cannot create a file beside", rel);
  }
  static char buffer[65536];
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) upload_failed("cannot receive", rel);
    if (n == 0) break;
    if (write_fully(fd, buffer, (size_t)n) != 0) upload_failed("cannot write", rel);
  }
  if (mode >= 0 && fchmod(fd, (mode_t)mode) != 0) upload_failed("cannot set the mode of", rel);
  /* Like `chmod --reference`: an existing file keeps its mode (best effort, as before). */
  if (mode < 0 && exists && S_ISREG(old.st_mode)) (void)fchmod(fd, old.st_mode & 07777);
  struct stat written;
  if (fstat(fd, &written) != 0 || close(fd) != 0) upload_failed("cannot write", rel);
  if (renameat(dir, upload_name, dir, name) != 0) upload_failed("cannot replace", rel);
  upload_dir = -1;
  printf("%lld\n", (long long)written.st_size);
  return finish_output();
}

static int op_mkdir(const char *rel, const char *how) {
  char canonical[PATH_MAX];
  if (strcmp(how, "parents") == 0) {
    int dir = -1;
    for (int attempt = 0; attempt < MAX_ATTEMPTS && dir < 0; attempt++) {
      dir = make_directories(resolve(rel, canonical));
      if (dir < 0 && errno != ELOOP) break;
    }
    if (dir < 0 && (errno == ENOTDIR || errno == EEXIST)) exit(EXIT_NOT_DIRECTORY);
    if (dir < 0) fail(EXIT_FAILED, "cannot make", rel);
    return 0;
  }
  /* The whole path resolved (a dangling symlink makes its target), then made there. */
  if (strcmp(resolve(rel, canonical), ".") == 0) exit(EXIT_EXISTS);
  char *slash = strrchr(canonical, '/');
  char name[NAME_MAX + 1], parent[PATH_MAX];
  snprintf(name, sizeof name, "%s", slash + 1);
  if (slash == canonical) slash[1] = '\0';
  else *slash = '\0';
  const char *parent_below = below_home(canonical);
  snprintf(parent, sizeof parent, "%s", parent_below == NULL ? "." : parent_below);
  int dir = open_resolved(parent, O_PATH | O_DIRECTORY, canonical);
  if (dir < 0 && (errno == ENOENT || errno == ENOTDIR)) exit(EXIT_NOT_FOUND);
  if (dir < 0) fail(EXIT_FAILED, "cannot make", rel);
  if (mkdirat(dir, name, 0777) == 0) return 0;
  if (errno == EEXIST) exit(EXIT_EXISTS);
  fail(EXIT_FAILED, "cannot make", rel);
}

/* rm -r below an O_PATH directory, never following a symlink: a link is removed, not its target. */
static int remove_tree(int parent, const char *name) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return unlinkat(parent, name, 0);
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    close(fd);
    return -1;
  }
  int result = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    struct stat st;
    int is_directory = entry->d_type == DT_DIR ||
                       (entry->d_type == DT_UNKNOWN && fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                        S_ISDIR(st.st_mode));
    if (is_directory ? remove_tree(fd, entry->d_name) != 0 : unlinkat(fd, entry->d_name, 0) != 0) {
      if (errno != ENOENT) result = -1;
    }
  }
  closedir(dir);
  if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT) result = -1;
  return result;
}

static int op_remove(const char *rel, const char *how) {
  char parent[PATH_MAX], name[NAME_MAX + 1];
  int dir = open_parent(rel, name, parent);
  if (dir >= 0 && name[0] == '\0') exit(EXIT_OUTSIDE_HOME);
  if (dir < 0 && (errno == ENOENT || errno == ENOTDIR)) exit(EXIT_NOT_FOUND);
  struct stat st;
  if (dir < 0) fail(EXIT_FAILED, "cannot remove", rel);
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) exit(EXIT_NOT_FOUND);
    fail(EXIT_FAILED, "cannot remove", rel);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dir, name, 0) != 0) fail(EXIT_FAILED, "cannot remove", rel);
    return 0;
  }
  if (strcmp(how, "recursive") == 0) {
    if (remove_tree(dir, name) != 0) fail(EXIT_FAILED, "cannot remove all of", rel);
    return 0;
  }
  if (unlinkat(dir, name, AT_REMOVEDIR) == 0) return 0;
  if (errno == ENOTEMPTY || errno == EEXIST) exit(EXIT_EXISTS);
  fail(EXIT_FAILED, "cannot remove", rel);
}

static int op_rename(const char *from, const char *to) {
  char from_parent[PATH_MAX], to_parent[PATH_MAX], from_name[NAME_MAX + 1], to_name[NAME_MAX + 1];
  int from_dir = open_parent(from, from_name, from_parent);
  if (from_dir >= 0 && from_name[0] == '\0') exit(EXIT_OUTSIDE_HOME);
  if (from_dir < 0 && (errno == ENOENT || errno == ENOTDIR)) exit(EXIT_NOT_FOUND);
  if (from_dir < 0) fail(EXIT_FAILED, "cannot move", from);
  struct stat st;
  if (fstatat(from_dir, from_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) exit(EXIT_NOT_FOUND);
    fail(EXIT_FAILED, "cannot move", from);
  }
  int to_dir = open_parent(to, to_name, to_parent);
  if (to_dir >= 0 && to_name[0] == '\0') exit(EXIT_OUTSIDE_HOME);
  if (to_dir < 0 && (errno == ENOENT || errno == ENOTDIR)) exit(EXIT_NOT_FOUND);
  if (to_dir < 0) fail(EXIT_FAILED, "cannot move to", to);
  if (renameat(from_dir, from_name, to_dir, to_name) == 0) return 0;
  /* A directory that is not empty, or a directory and a non-directory: the destination is taken. */
  if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR || errno == EISDIR) exit(EXIT_EXISTS);
  if (errno == EINVAL) {
    fprintf(stderr, "cannot move \"%s\" into itself\n", from);
    exit(EXIT_FAILED);
  }
  fail(EXIT_FAILED, "cannot move", from);
}

int file_ops_main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s --file <op> <home> <path> [arg]\n", argv[0]);
    return 2;
  }
  const char *op = argv[2], *rel = argv[4], *arg = argc > 5 ? argv[5] : "";
  if (argv[3][0] != '/' || canonicalize(argv[3], home) != 0) fail(EXIT_FAILED, "cannot resolve the home", argv[3]);
  home_length = strlen(home);
  home_fd = open(home, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (home_fd < 0) fail(EXIT_FAILED, "cannot open the home", home);
  static char output[65536];
  setvbuf(stdout, output, _IOFBF, sizeof output);
  if (strcmp(op, "stat") == 0) return op_stat(rel);
  if (strcmp(op, "list") == 0) return op_list(rel);
  if (strcmp(op, "snapshot") == 0) return op_snapshot(rel);
  if (strcmp(op, "read") == 0) return op_read(rel);
  if (argc != 6) {
    fprintf(stderr, "polydev: --file %s takes one more argument\n", op);
    return 2;
  }
  if (strcmp(op, "write") == 0) return op_write(rel, arg);
  if (strcmp(op, "mkdir") == 0) return op_mkdir(rel, arg);
  if (strcmp(op, "remove") == 0) return op_remove(rel, arg);
  if (strcmp(op, "rename") == 0) return op_rename(rel, arg);
  fprintf(stderr, "polydev: unknown file operation \"%s\"\n", op);
  return 2;
}
