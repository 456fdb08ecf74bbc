/*
 * --egress-relay <tcp port> <dns port> <unix socket path>: inside an allow-list sandbox (forked
 * by the init like --listen, so a sandbox process charged to its limits), carries everything the
 * sandbox's network namespace lets out (egress-setup.c) to the host's unix socket in the exec
 * directory, one connection per TCP connection or DNS message, each starting with one line:
 *
 *   tcp <address> <port>\n      then the connection's bytes both ways (127.0.0.1:<tcp port>,
 *                               where nftables redirected it; SO_ORIGINAL_DST names the
 *                               destination, or the relay's own address when a process
 *                               connected to it directly)
 *   dns <address> <port>\n      then one query framed as DNS over TCP (2-byte length, message);
 *                               the host answers one message the same way. For a UDP query
 *                               (<address>:53 delivered unchanged to the UDP socket on
 *                               <dns port>; IP_ORIGDSTADDR names it) the answer goes back from
 *                               that address; for TCP to port 53 (redirected to 127.0.0.1:<dns
 *                               port>) each message of the connection is one such exchange.
 *
 * Prints "ready" once listening; stops listening when its stdin ends. Each TCP connection is
 * copied by a child of its own (forward.c's model, at most MAX_CONNECTIONS); each DNS query is
 * answered by a child that gives up after DNS_TIMEOUT_MS, at most MAX_DNS_IN_FLIGHT more. A
 * child hands a UDP answer back to this process (one datagram on a socketpair), which alone
 * owns the UDP socket: a relay started later can bind it again at once.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

#define MAX_DNS_IN_FLIGHT 32
#define MAX_UDP_QUERY_BYTES 4096
#define MAX_DNS_MESSAGE_BYTES 65535
/* The largest payload one UDP datagram can carry. */
#define MAX_UDP_ANSWER_BYTES 65507
/* How long the host may take to answer one DNS message. */
#define DNS_TIMEOUT_MS 5000
/* How long a DNS-over-TCP client may sit idle between messages, or take to read an answer. */
#define DNS_TCP_IDLE_MS 30000

/* A UDP answer on its way from a child to the relay. */
struct udp_answer {
  struct sockaddr_in client;
  struct in_addr source;
  uint16_t length;
  unsigned char message[MAX_UDP_ANSWER_BYTES];
};

static int parse_port(const char *text) {
  char *end;
  long port = strtol(text, &end, 10);
  return *end == '\0' && port > 0 && port < 65536 ? (int)port : -1;
}

/* Reads or writes exactly `length` bytes before `deadline` (now_ms clock); 0, or -1. */
static int transfer_until(int fd, void *buffer, size_t length, int64_t deadline, int writing) {
  unsigned char *p = buffer;
  while (length > 0) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return -1;
    struct pollfd waiting = {.fd = fd, .events = writing ? POLLOUT : POLLIN};
    int ready = poll(&waiting, 1, (int)left);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return -1;
    ssize_t n = writing ? send(fd, p, length, MSG_NOSIGNAL | MSG_DONTWAIT) : recv(fd, p, length, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return -1;
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

static int send_header(int host, const char *kind, struct in_addr address, int port) {
  char text[INET_ADDRSTRLEN];
  char line[64];
  inet_ntop(AF_INET, &address, text, sizeof text);
  int length = snprintf(line, sizeof line, "%s %s %d\n", kind, text, port);
  return write_fully(host, line, (size_t)length);
}

/*
 * One DNS message through the host: a connection of its own, the header, the framed query, and
 * one framed answer back. Returns the answer's length, or -1.
 */
static int dns_exchange(const char *unix_path, struct in_addr address, int port, const unsigned char *query,
                        size_t length, unsigned char *answer) {
  int host = connect_unix_path(unix_path);
  if (host < 0) return -1;
  int64_t deadline = now_ms() + DNS_TIMEOUT_MS;
  unsigned char frame[2] = {(unsigned char)(length >> 8), (unsigned char)length};
  unsigned char size[2];
  int result = -1;
  if (send_header(host, "dns", address, port) == 0 && transfer_until(host, frame, 2, deadline, 1) == 0 &&
      transfer_until(host, (void *)query, length, deadline, 1) == 0 && transfer_until(host, size, 2, deadline, 0) == 0) {
    size_t answer_length = ((size_t)size[0] << 8) | size[1];
    if (transfer_until(host, answer, answer_length, deadline, 0) == 0) result = (int)answer_length;
  }
  close(host);
  return result;
}

/* Where a redirected TCP connection was headed (else where it arrived: a direct connection). */
static struct sockaddr_in original_destination(int tcp) {
  struct sockaddr_in destination;
  socklen_t length = sizeof destination;
  if (getsockopt(tcp, SOL_IP, SO_ORIGINAL_DST, &destination, &length) != 0) {
    length = sizeof destination;
    getsockname(tcp, (struct sockaddr *)&destination, &length);
  }
  return destination;
}

static void carry_tcp(int tcp, const char *unix_path) {
  struct sockaddr_in destination = original_destination(tcp);
  int host = connect_unix_path(unix_path);
  if (host < 0 || send_header(host, "tcp", destination.sin_addr, ntohs(destination.sin_port)) != 0) _exit(1);
  _exit(pump_both_ways(tcp, tcp, host, host) == 0 ? 0 : 1);
}

/* DNS over TCP: every message of the connection is one exchange with the host. */
static void carry_dns_tcp(int tcp, const char *unix_path) {
  static unsigned char query[MAX_DNS_MESSAGE_BYTES], answer[MAX_DNS_MESSAGE_BYTES];
  struct sockaddr_in destination = original_destination(tcp);
  /* Redirected from port 53, or connected to the DNS port directly: a DNS query either way. */
  set_nonblocking(tcp);
  for (;;) {
    unsigned char size[2];
    if (transfer_until(tcp, size, 2, now_ms() + DNS_TCP_IDLE_MS, 0) != 0) _exit(0);
    size_t length = ((size_t)size[0] << 8) | size[1];
    if (length == 0 || transfer_until(tcp, query, length, now_ms() + DNS_TCP_IDLE_MS, 0) != 0) _exit(0);
    int answered = dns_exchange(unix_path, destination.sin_addr, 53, query, length, answer);
    if (answered < 0) _exit(1);
    size[0] = (unsigned char)(answered >> 8);
    size[1] = (unsigned char)answered;
    int64_t deadline = now_ms() + DNS_TCP_IDLE_MS;
    if (transfer_until(tcp, size, 2, deadline, 1) != 0 || transfer_until(tcp, answer, (size_t)answered, deadline, 1) != 0)
      _exit(1);
  }
}

static void answer_udp(int answers, struct sockaddr_in client, struct in_addr address, const unsigned char *query,
                       size_t length, const char *unix_path) {
  static struct udp_answer record;
  static unsigned char answer[MAX_DNS_MESSAGE_BYTES];
  int answered = dns_exchange(unix_path, address, 53, query, length, answer);
  if (answered < 0 || answered > MAX_UDP_ANSWER_BYTES) _exit(1);
  record.client = client;
  record.source = address;
  record.length = (uint16_t)answered;
  memcpy(record.message, answer, (size_t)answered);
  size_t size = offsetof(struct udp_answer, message) + (size_t)answered;
  _exit(send(answers, &record, size, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)size ? 0 : 1);
}

/* One datagram off the UDP socket, to a child that asks the host. */
static void take_udp_query(int udp, int answers, int *listeners, int listener_count, const char *unix_path) {
  static unsigned char query[MAX_UDP_QUERY_BYTES];
  struct sockaddr_in client;
  char control[CMSG_SPACE(sizeof(struct sockaddr_in))];
  struct iovec vector = {.iov_base = query, .iov_len = sizeof query};
  struct msghdr message = {.msg_name = &client,
                           .msg_namelen = sizeof client,
                           .msg_iov = &vector,
                           .msg_iovlen = 1,
                           .msg_control = control,
                           .msg_controllen = sizeof control};
  ssize_t got = recvmsg(udp, &message, MSG_DONTWAIT);
  if (got <= 0 || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || message.msg_namelen != sizeof client) return;
  struct sockaddr_in *destination = NULL;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL; c = CMSG_NXTHDR(&message, c))
    if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) destination = (struct sockaddr_in *)CMSG_DATA(c);
  if (destination == NULL) return;
  struct in_addr address = destination->sin_addr;
  if (connections_in_flight() >= MAX_CONNECTIONS + MAX_DNS_IN_FLIGHT) return;
  if (fork_connection() == 0) {
    for (int i = 0; i < listener_count; i++) close(listeners[i]);
    answer_udp(answers, client, address, query, (size_t)got, unix_path);
  }
}

/* A child's answer, sent to the querying socket from the address it had asked. */
static void send_udp_answer(int udp, int answers) {
  static struct udp_answer record;
  ssize_t got = recv(answers, &record, sizeof record, MSG_DONTWAIT);
  if (got < (ssize_t)offsetof(struct udp_answer, message) ||
      (size_t)got != offsetof(struct udp_answer, message) + record.length)
    return;
  char control[CMSG_SPACE(sizeof(struct in_pktinfo))];
  memset(control, 0, sizeof control);
  struct iovec vector = {.iov_base = record.message, .iov_len = record.length};
  struct msghdr message = {.msg_name = &record.client,
                           .msg_namelen = sizeof record.client,
                           .msg_iov = &vector,
                           .msg_iovlen = 1,
                           .msg_control = control,
                           .msg_controllen = sizeof control};
  struct cmsghdr *c = CMSG_FIRSTHDR(&message);
  c->cmsg_level = SOL_IP;
  c->cmsg_type = IP_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
  struct in_pktinfo info = {.ipi_spec_dst = record.source};
  memcpy(CMSG_DATA(c), &info, sizeof info);
  sendmsg(udp, &message, MSG_DONTWAIT);
}

static int bind_udp_any(int port) {
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (udp < 0 || setsockopt(udp, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof one) != 0 ||
      bind(udp, (struct sockaddr *)&address, sizeof address) != 0) {
    int error = errno;
    if (udp >= 0) close(udp);
    errno = error;
    return -1;
  }
  return udp;
}

static int relay(int tcp_port, int dns_port, const char *unix_path) {
  int tcp = listen_loopback_tcp(tcp_port);
  int dns_tcp = tcp < 0 ? -1 : listen_loopback_tcp(dns_port);
  int udp = dns_tcp < 0 ? -1 : bind_udp_any(dns_port);
  int answers[2];
  if (udp < 0 || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, answers) != 0) {
    fprintf(stderr, "polydev: cannot listen on ports %d and %d in the sandbox: %s\n", tcp_port, dns_port,
            strerror(errno));
    return 1;
  }
  int listeners[] = {tcp, dns_tcp, udp, answers[0]};
  int one = 1;
  start_reaping();
  if (write_fully(STDOUT_FILENO, "ready\n", 6) != 0) return 1;
  for (;;) {
    struct pollfd fds[5] = {{.fd = tcp, .events = POLLIN},
                            {.fd = dns_tcp, .events = POLLIN},
                            {.fd = udp, .events = POLLIN},
                            {.fd = answers[0], .events = POLLIN},
                            {.fd = STDIN_FILENO, .events = POLLIN}};
    if (poll(fds, 5, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[4].revents && stdin_ended()) return 0;
    if (fds[3].revents) send_udp_answer(udp, answers[0]);
    if (fds[2].revents) take_udp_query(udp, answers[1], listeners, 4, unix_path);
    for (int i = 0; i < 2; i++) {
      if (!fds[i].revents) continue;
      int connection = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
      if (connection < 0) continue;
      if (connections_in_flight() >= MAX_CONNECTIONS) {
        close(connection);
        continue;
      }
      setsockopt(connection, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (fork_connection() == 0) {
        for (int j = 0; j < 4; j++) close(listeners[j]);
        close(answers[1]);
        if (i == 0) carry_tcp(connection, unix_path);
        carry_dns_tcp(connection, unix_path);
      }
      close(connection);
    }
  }
}

int egress_relay_main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  int tcp_port = argc == 5 ? parse_port(argv[2]) : -1;
  int dns_port = argc == 5 ? parse_port(argv[3]) : -1;
  if (tcp_port < 0 || dns_port < 0 || tcp_port == dns_port) {
    fprintf(stderr, "usage: %s --egress-relay <tcp port> <dns port> <unix socket path>\n", argv[0]);
    return 2;
  }
  return relay(tcp_port, dns_port, argv[4]);
}
