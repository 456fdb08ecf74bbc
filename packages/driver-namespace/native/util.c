/* Small helpers shared by every part of the exec server. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

uint32_t get_u32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void put_u32(unsigned char *p, uint32_t value) {
  p[0] = (unsigned char)(value >> 24);
  p[1] = (unsigned char)(value >> 16);
  p[2] = (unsigned char)(value >> 8);
  p[3] = (unsigned char)value;
}

int read_fully(int fd, void *buffer, size_t length) {
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

int write_fully(int fd, const void *buffer, size_t length) {
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

void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void set_blocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
}

int64_t now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

void close_descriptors_from(int first) {
  if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0) return;
  /* Kernels before 5.9: walk the table. Collected first, closed after, so the walk's own
   * descriptor is never pulled from under it. */
  DIR *fds = opendir("/proc/self/fd");
  if (!fds) {
    for (int fd = first; fd < 65536; fd++) close(fd);
    return;
  }
  int self = dirfd(fds);
  int found[1024];
  size_t count = 0;
  struct dirent *entry;
  while ((entry = readdir(fds)) != NULL && count < sizeof found / sizeof found[0]) {
    char *end;
    long fd = strtol(entry->d_name, &end, 10);
    if (*end == '\0' && fd >= first && fd != self) found[count++] = (int)fd;
  }
  closedir(fds);
  for (size_t i = 0; i < count; i++) close(found[i]);
}

/* One direction of pump_both_ways. */
struct direction {
  int in, out;
  int open; /* still copying */
  unsigned char buffer[64 * 1024];
  size_t length, sent;
};

static void end_direction(struct direction *d) {
  d->open = 0;
  if (shutdown(d->out, SHUT_WR) != 0 && errno == ENOTSOCK) close(d->out);
}

int pump_both_ways(int a_in, int a_out, int b_in, int b_out) {
  static struct direction ways[2];
  ways[0] = (struct direction){.in = a_in, .out = b_out, .open = 1};
  ways[1] = (struct direction){.in = b_in, .out = a_out, .open = 1};
  for (int i = 0; i < 2; i++) {
    set_nonblocking(ways[i].in);
    set_nonblocking(ways[i].out);
  }
  while (ways[0].open || ways[1].open) {
    struct pollfd fds[4];
    int at[2][2] = {{-1, -1}, {-1, -1}};
    nfds_t n = 0;
    for (int i = 0; i < 2; i++) {
      struct direction *d = &ways[i];
      if (!d->open) continue;
      /* Read only when the buffer is empty: back-pressure flows through the kernel buffers. */
      if (d->length == d->sent) {
        at[i][0] = (int)n;
        fds[n++] = (struct pollfd){.fd = d->in, .events = POLLIN};
      } else {
        at[i][1] = (int)n;
        fds[n++] = (struct pollfd){.fd = d->out, .events = POLLOUT};
      }
    }
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (int i = 0; i < 2; i++) {
      struct direction *d = &ways[i];
      if (!d->open) continue;
      if (at[i][0] >= 0 && fds[at[i][0]].revents) {
        ssize_t got = read(d->in, d->buffer, sizeof d->buffer);
        if (got > 0) {
          d->length = (size_t)got;
          d->sent = 0;
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
          end_direction(d);
        }
      } else if (at[i][1] >= 0 && fds[at[i][1]].revents) {
        ssize_t sent = write(d->out, d->buffer + d->sent, d->length - d->sent);
        if (sent > 0) d->sent += (size_t)sent;
        else if (sent < 0 && errno != EAGAIN && errno != EINTR) {
          /* The far side is gone: nothing more goes that way, and nothing comes back. */
          d->open = 0;
          ways[1 - i].open = 0;
          return -1;
        }
        if (d->sent == d->length) d->length = d->sent = 0;
      }
    }
  }
  return 0;
}
