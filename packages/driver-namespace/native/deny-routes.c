/*
 * --deny-routes <netns path> <IPv4 CIDR>...: on the host, as root, adds a "prohibit" route for
 * each CIDR to the network namespace at <netns path> (a sandbox's, before it gets to use it), so
 * connections to those addresses fail at once with EACCES/EHOSTUNREACH instead of leaving
 * through slirp4netns. Used for what "egress" must never reach: link-local addresses (cloud
 * metadata services hold credentials there) and the host's own addresses. The sandbox has no
 * CAP_NET_ADMIN over its network namespace (it belongs to bubblewrap's outer user namespace), so
 * it cannot remove them. Plain rtnetlink: no dependency on iproute2 being installed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

struct route_request {
  struct nlmsghdr header;
  struct rtmsg route;
  char attributes[64];
};

static int parse_cidr(const char *text, struct in_addr *address, int *length) {
  char copy[64];
  if (strlen(text) >= sizeof copy) return -1;
  strcpy(copy, text);
  char *slash = strchr(copy, '/');
  *length = 32;
  if (slash) {
    *slash = '\0';
    char *end;
    long value = strtol(slash + 1, &end, 10);
    if (*end != '\0' || value < 0 || value > 32) return -1;
    *length = (int)value;
  }
  if (inet_pton(AF_INET, copy, address) != 1) return -1;
  /* The network address itself: the kernel refuses host bits set under the prefix. */
  uint32_t mask = *length == 0 ? 0 : htonl(~0u << (32 - *length));
  address->s_addr &= mask;
  return 0;
}

/* Sends one rtnetlink request (NLM_F_ACK set) and waits for its acknowledgement. */
int netlink_ack(int netlink, struct nlmsghdr *request) {
  if (send(netlink, request, request->nlmsg_len, 0) < 0) return -1;
  char answer[4096];
  ssize_t got = recv(netlink, answer, sizeof answer, 0);
  if (got < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -1;
  struct nlmsghdr *reply = (struct nlmsghdr *)answer;
  if (reply->nlmsg_type != NLMSG_ERROR) return -1;
  struct nlmsgerr *error = NLMSG_DATA(reply);
  if (error->error != 0) {
    errno = -error->error;
    return -1;
  }
  return 0;
}

/* Joins the network namespace at `path` (a sandbox's /proc/<pid>/ns/net), as the host's root. */
int enter_network_namespace(const char *path) {
  int namespace_fd = open(path, O_RDONLY | O_CLOEXEC);
  if (namespace_fd < 0 || setns(namespace_fd, CLONE_NEWNET) != 0) {
    fprintf(stderr, "polydev: cannot enter %s: %s\n", path, strerror(errno));
    if (namespace_fd >= 0) close(namespace_fd);
    return -1;
  }
  close(namespace_fd);
  return 0;
}

static int add_prohibit_route(int netlink, struct in_addr destination, int length, unsigned sequence) {
  struct route_request request;
  memset(&request, 0, sizeof request);
  request.header.nlmsg_type = RTM_NEWROUTE;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
  request.header.nlmsg_seq = sequence;
  request.route.rtm_family = AF_INET;
  request.route.rtm_dst_len = (unsigned char)length;
  request.route.rtm_table = RT_TABLE_MAIN;
  request.route.rtm_protocol = RTPROT_STATIC;
  request.route.rtm_scope = RT_SCOPE_UNIVERSE;
  request.route.rtm_type = RTN_PROHIBIT;
  struct rtattr *attribute = (struct rtattr *)request.attributes;
  attribute->rta_type = RTA_DST;
  attribute->rta_len = (unsigned short)RTA_LENGTH(sizeof destination);
  memcpy(RTA_DATA(attribute), &destination, sizeof destination);
  request.header.nlmsg_len = (unsigned)(NLMSG_LENGTH(sizeof request.route) + RTA_ALIGN(attribute->rta_len));
  return netlink_ack(netlink, &request.header);
}

int deny_routes_main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s --deny-routes <netns path> <IPv4 CIDR>...\n", argv[0]);
    return 2;
  }
  close_descriptors_from(3);
  if (enter_network_namespace(argv[2]) != 0) return 1;
  int netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (netlink < 0) {
    perror("polydev: netlink");
    return 1;
  }
  for (int i = 3; i < argc; i++) {
    struct in_addr destination;
    int length;
    if (parse_cidr(argv[i], &destination, &length) != 0) {
      fprintf(stderr, "polydev: not an IPv4 CIDR: %s\n", argv[i]);
      return 2;
    }
    if (add_prohibit_route(netlink, destination, length, (unsigned)i) != 0) {
      fprintf(stderr, "polydev: cannot deny %s: %s\n", argv[i], strerror(errno));
      return 1;
    }
  }
  return 0;
}
