/*
 * Port forwarding inside the sandbox's network namespace, the two directions of SSH's
 * connection protocol (RFC 4254 §7):
 *
 *   --connect <port>              connects to 127.0.0.1:<port> (else [::1]:<port>), prints "+",
 *                                 then copies stdin to it and it to stdout: the host's side of a
 *                                 "direct" forward is simply this command's stdio, relayed by
 *                                 the exec server with its usual back-pressure.
 *   --listen <port> <unix path>   listens on 127.0.0.1:<port> and carries each accepted
 *                                 connection to the unix socket <unix path>, which the host
 *                                 serves in the sandbox's root-owned exec directory (e.g. the
 *                                 provider gateway). Prints "ready" once listening; stops
 *                                 listening when its stdin ends (the host stopped forwarding),
 *                                 leaving the connections it carries to end on their own.
 *
 * Each accepted connection is copied by a child process of its own (charged to the sandbox's
 * pids and memory limits), at most MAX_CONNECTIONS at a time; the copy reads a side only when the
 * other can take the bytes, so nothing is buffered beyond one chunk per direction.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static int parse_port(const char *text) {
  char *end;
  long port = strtol(text, &end, 10);
  return *end == '\0' && port > 0 && port < 65536 ? (int)port : -1;
}

static int connect_loopback(int port) {
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&v4, sizeof v4) == 0) return fd;
  int error = errno;
  if (fd >= 0) close(fd);
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&v6, sizeof v6) == 0) return fd;
  if (fd >= 0) close(fd);
  errno = error;
  return -1;
}

static int forward_connect(int port) {
  int fd = connect_loopback(port);
  if (fd < 0) {
    fprintf(stderr, "polydev: nothing accepts connections on port %d in the sandbox (%s)\n", port, strerror(errno));
    return 111;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* One byte says "connected": the host waits for it before it hands the stream on. */
  if (write_fully(STDOUT_FILENO, "+", 1) != 0) return 1;
  return pump_both_ways(STDIN_FILENO, STDOUT_FILENO, fd, fd) == 0 ? 0 : 1;
}

static volatile sig_atomic_t children = 0;

static void reap(int signo) {
  (void)signo;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) children--;
  errno = saved;
}

void start_reaping(void) {
  struct sigaction action = {.sa_handler = reap, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
  sigemptyset(&action.sa_mask);
  sigaction(SIGCHLD, &action, NULL);
}

int connections_in_flight(void) {
  return (int)children;
}

pid_t fork_connection(void) {
  sigset_t block, previous;
  sigemptyset(&block);
  sigaddset(&block, SIGCHLD);
  sigprocmask(SIG_BLOCK, &block, &previous);
  pid_t child = fork();
  if (child == 0) {
    signal(SIGCHLD, SIG_DFL);
    /* Off the listener's stdio: the listener may end (the host stopped forwarding) while this
     * connection goes on, and its exec ends only once nothing holds its pipes. */
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0)
      for (int fd = 0; fd <= 2; fd++) dup2(null_fd, fd);
  } else if (child > 0) {
    children++;
  }
  sigprocmask(SIG_SETMASK, &previous, NULL);
  return child;
}

int stdin_ended(void) {
  char ignored[256];
  ssize_t got = read(STDIN_FILENO, ignored, sizeof ignored);
  return got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN);
}

int listen_loopback_tcp(int port) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 128) != 0) {
    int error = errno;
    if (listener >= 0) close(listener);
    errno = error;
    return -1;
  }
  return listener;
}

int connect_unix_path(const char *unix_path) {
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  if (strlen(unix_path) >= sizeof address.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(address.sun_path, unix_path);
  int host = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (host < 0) return -1;
  if (connect(host, (struct sockaddr *)&address, sizeof address) != 0) {
    int error = errno;
    close(host);
    errno = error;
    return -1;
  }
  return host;
}

static int forward_listen(int port, const char *unix_path) {
  int listener = listen_loopback_tcp(port);
  if (listener < 0) {
    fprintf(stderr, "polydev: cannot listen on port %d in the sandbox: %s\n", port, strerror(errno));
    return 1;
  }
  int one = 1;
  start_reaping();
  if (write_fully(STDOUT_FILENO, "ready\n", 6) != 0) return 1;
  for (;;) {
    struct pollfd fds[2] = {{.fd = listener, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[1].revents && stdin_ended()) return 0;
    if (!fds[0].revents) continue;
    int tcp = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (tcp < 0) continue;
    if (connections_in_flight() >= MAX_CONNECTIONS) {
      close(tcp);
      continue;
    }
    setsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fork_connection() == 0) {
      close(listener);
      int host = connect_unix_path(unix_path);
      if (host < 0) _exit(1);
      _exit(pump_both_ways(tcp, tcp, host, host) == 0 ? 0 : 1);
    }
    close(tcp);
  }
}

int forward_main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(argv[1], "--connect") == 0 && argc == 3) {
    int port = parse_port(argv[2]);
    if (port > 0) return forward_connect(port);
  } else if (strcmp(argv[1], "--listen") == 0 && argc == 4) {
    int port = parse_port(argv[2]);
    if (port > 0) return forward_listen(port, argv[3]);
  }
  fprintf(stderr, "usage: %s --connect <port> | --listen <port> <unix socket path>\n", argv[0]);
  return 2;
}
