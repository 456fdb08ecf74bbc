/*
 * Shared by the parts of the polydev exec server (see exec-server.c for the whole picture):
 * framing helpers, descriptor hygiene and the in-sandbox hardening every process inherits.
 */
#ifndef POLYDEV_COMMON_H
#define POLYDEV_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where background processes keep their state inside the sandbox (a tmpfs charged to it). */
#define BG_ROOT "/run/polydev-processes"

uint32_t get_u32(const unsigned char *p);
void put_u32(unsigned char *p, uint32_t value);
int read_fully(int fd, void *buffer, size_t length);
int write_fully(int fd, const void *buffer, size_t length);
void set_nonblocking(int fd);
void set_blocking(int fd);
int64_t now_ms(void);

/* Closes every descriptor from `first` up, whatever opened it (close_range, else /proc/self/fd). */
void close_descriptors_from(int first);

/*
 * The init's hardening, inherited by every process in the sandbox: not dumpable (no ptrace or
 * pidfd_getfd on the init or the relays by sandbox processes), no_new_privs, and the seccomp
 * deny-list. Returns 0, or -1 with errno set (the init then refuses to start).
 */
int harden_init(void);
/* The same for an image sandbox's root init, before its exec: no no_new_privs (sudo must work). */
int harden_root_init(void);

/*
 * Switches a command's process to `name` (a user of the sandbox's /etc/passwd, or a uid) right
 * before exec, replacing HOME, USER and LOGNAME in *envp; `terminal` (or -1) becomes theirs.
 * Returns 0, or -1 after saying why on stderr.
 */
int switch_user(const char *name, char ***envp, int terminal);

/* --image (image-root.c): builds an image sandbox as root on the host; see there. */
int image_sandbox_main(int argc, char **argv);

/* Subcommands run inside the sandbox through an exec request (background.c, forward.c). */
int background_main(int argc, char **argv);
int forward_main(int argc, char **argv);
int disk_usage_main(int argc, char **argv);
int file_ops_main(int argc, char **argv);
int deny_routes_main(int argc, char **argv);
int egress_setup_main(int argc, char **argv);
int egress_relay_main(int argc, char **argv);

/* rtnetlink (deny-routes.c), for the host-side network setup of a sandbox's namespace. */
struct nlmsghdr;
int netlink_ack(int netlink, struct nlmsghdr *request);
int enter_network_namespace(const char *path);

/*
 * The fork-per-connection model of the in-sandbox forwarders (forward.c): each connection is
 * copied by a child process of its own, charged to the sandbox's limits, and the listener stops
 * when its stdin ends (the host stopped forwarding) while the children finish on their own.
 */
#define MAX_CONNECTIONS 64
void start_reaping(void);
int connections_in_flight(void);
/* fork() counted in connections_in_flight; in the child (0) stdio is /dev/null, SIGCHLD default. */
pid_t fork_connection(void);
/* Reads what is waiting on stdin (after poll said so): 1 once it has ended. */
int stdin_ended(void);
/* A TCP listener on 127.0.0.1:<port>; -1 with errno set. */
int listen_loopback_tcp(int port);
/* A connected unix stream socket; -1 with errno set. */
int connect_unix_path(const char *unix_path);

/*
 * Copies bytes both ways between two descriptor pairs until both directions are done:
 * a_in -> b_out and b_in -> a_out. An ended direction half-closes its output (shutdown for
 * sockets, close otherwise). Returns 0 when both ended cleanly, -1 on an error.
 */
int pump_both_ways(int a_in, int a_out, int b_in, int b_out);

#endif
