/*
 * --egress-setup <netns path> <tcp port> <dns port>: on the host, as root, turns the network
 * namespace of an allow-list sandbox (before anything of its user runs) into one whose only way
 * out is the in-sandbox relay (egress-relay.c), which carries every connection to the host:
 *
 * - lo is up, and every IPv4 address is local to it (`local 0.0.0.0/0 dev lo src 127.0.0.1` in
 *   the local table). So a packet never needs a route out (there is no other interface), and a
 *   DNS datagram sent to any address is delivered, with that destination address unchanged, to
 *   the relay's UDP socket, which answers from that same address. (REDIRECT would rewrite the
 *   address to 127.0.0.1, and nothing unprivileged can read the original back for UDP:
 *   IP_ORIGDSTADDR reports the rewritten one, SO_ORIGINAL_DST works for TCP only.)
 * - nftables, a fixed ruleset (`table inet polydev`, made here from the two port numbers alone):
 *   UDP to port 53 keeps its address and goes to the DNS port; TCP to port 53 is redirected to
 *   the relay's DNS-over-TCP port; every other TCP connection to a non-loopback address is
 *   redirected to the relay's TCP port (the relay reads SO_ORIGINAL_DST). Everything else that
 *   would leave loopback is rejected at once (TCP reset, ICMP administratively prohibited):
 *   other UDP, ICMP, IPv6 beyond ::1, anything else.
 *
 * The sandbox has no capabilities over its network namespace (it belongs to bubblewrap's outer
 * user namespace), so nothing inside can change the routes or the ruleset. nft runs with an
 * empty environment and nothing but this ruleset on its stdin.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define NFT "/usr/sbin/nft"

struct link_request {
  struct nlmsghdr header;
  struct ifinfomsg link;
};

struct route_request {
  struct nlmsghdr header;
  struct rtmsg route;
  char attributes[64];
};

static int parse_port(const char *text) {
  char *end;
  long port = strtol(text, &end, 10);
  return *end == '\0' && port > 0 && port < 65536 ? (int)port : -1;
}

static int bring_up(int netlink, int index) {
  struct link_request request;
  memset(&request, 0, sizeof request);
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof request.link);
  request.header.nlmsg_type = RTM_NEWLINK;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  request.header.nlmsg_seq = 1;
  request.link.ifi_family = AF_UNSPEC;
  request.link.ifi_index = index;
  request.link.ifi_flags = IFF_UP;
  request.link.ifi_change = IFF_UP;
  return netlink_ack(netlink, &request.header);
}

static void add_attribute(struct route_request *request, unsigned short type, const void *data, size_t length) {
  struct rtattr *attribute = (struct rtattr *)((char *)request + NLMSG_ALIGN(request->header.nlmsg_len));
  attribute->rta_type = type;
  attribute->rta_len = (unsigned short)RTA_LENGTH(length);
  memcpy(RTA_DATA(attribute), data, length);
  request->header.nlmsg_len = NLMSG_ALIGN(request->header.nlmsg_len) + RTA_ALIGN(attribute->rta_len);
}

/* `ip route add local 0.0.0.0/0 dev lo src 127.0.0.1 table local` */
static int make_every_address_local(int netlink, int index) {
  struct route_request request;
  memset(&request, 0, sizeof request);
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof request.route);
  request.header.nlmsg_type = RTM_NEWROUTE;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
  request.header.nlmsg_seq = 2;
  request.route.rtm_family = AF_INET;
  request.route.rtm_dst_len = 0;
  request.route.rtm_table = RT_TABLE_LOCAL;
  request.route.rtm_protocol = RTPROT_STATIC;
  request.route.rtm_scope = RT_SCOPE_HOST;
  request.route.rtm_type = RTN_LOCAL;
  uint32_t oif = (uint32_t)index;
  struct in_addr source = {.s_addr = htonl(INADDR_LOOPBACK)};
  add_attribute(&request, RTA_OIF, &oif, sizeof oif);
  add_attribute(&request, RTA_PREFSRC, &source, sizeof source);
  return netlink_ack(netlink, &request.header);
}

/*
 * The ruleset. The first two lines make it replace an earlier one (a repeated setup).
 * Filter runs after nat (priority 0 after -100), so it sees redirected packets at 127.0.0.1 and
 * DNS datagrams with their DNAT recorded in conntrack.
 */
static int ruleset(char *text, size_t size, int tcp_port, int dns_port) {
  return snprintf(text, size,
                  "table inet polydev\n"
                  "delete table inet polydev\n"
                  "table inet polydev {\n"
                  "  chain nat_output {\n"
                  "    type nat hook output priority -100; policy accept;\n"
                  "    meta nfproto ipv4 udp dport 53 dnat ip to ip daddr:%d\n"
                  "    meta nfproto ipv4 tcp dport 53 redirect to :%d\n"
                  "    meta nfproto ipv4 meta l4proto tcp ip daddr != 127.0.0.0/8 redirect to :%d\n"
                  "  }\n"
                  "  chain filter_output {\n"
                  "    type filter hook output priority 0; policy drop;\n"
                  "    oif \"lo\" ip daddr 127.0.0.0/8 accept\n"
                  "    oif \"lo\" ip6 daddr ::1 accept\n"
                  "    oif \"lo\" meta l4proto udp udp dport %d ct status dnat accept\n"
                  "    meta l4proto tcp reject with tcp reset\n"
                  "    reject with icmpx admin-prohibited\n"
                  "  }\n"
                  "}\n",
                  dns_port, dns_port, tcp_port, dns_port);
}

static int load_ruleset(const char *text) {
  int input[2];
  if (pipe2(input, O_CLOEXEC) != 0) return -1;
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    dup2(input[0], STDIN_FILENO);
    char *argv[] = {"nft", "-f", "-", NULL};
    char *envp[] = {NULL};
    execve(NFT, argv, envp);
    fprintf(stderr, "polydev: cannot run %s: %s\n", NFT, strerror(errno));
    _exit(127);
  }
  close(input[0]);
  int written = write_fully(input[1], text, strlen(text));
  close(input[1]);
  int status;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return written == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int egress_setup_main(int argc, char **argv) {
  int tcp_port = argc == 5 ? parse_port(argv[3]) : -1;
  int dns_port = argc == 5 ? parse_port(argv[4]) : -1;
  if (tcp_port < 0 || dns_port < 0 || tcp_port == dns_port || tcp_port == 53 || dns_port == 53) {
    fprintf(stderr, "usage: %s --egress-setup <netns path> <tcp port> <dns port>\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  close_descriptors_from(3);
  if (enter_network_namespace(argv[2]) != 0) return 1;
  int netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (netlink < 0) {
    perror("polydev: netlink");
    return 1;
  }
  int lo = (int)if_nametoindex("lo");
  if (lo == 0 || bring_up(netlink, lo) != 0) {
    fprintf(stderr, "polydev: cannot bring up lo: %s\n", strerror(errno));
    return 1;
  }
  if (make_every_address_local(netlink, lo) != 0) {
    fprintf(stderr, "polydev: cannot route every address to lo: %s\n", strerror(errno));
    return 1;
  }
  char text[2048];
  int length = ruleset(text, sizeof text, tcp_port, dns_port);
  if (length < 0 || (size_t)length >= sizeof text || load_ruleset(text) != 0) {
    fprintf(stderr, "polydev: cannot install the egress ruleset\n");
    return 1;
  }
  return 0;
}
