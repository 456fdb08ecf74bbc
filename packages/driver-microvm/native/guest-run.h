/* What guest-run.c and guest-activate.c share (both linked into the one static guest-run). */
#ifndef POLYDEV_GUEST_RUN_H
#define POLYDEV_GUEST_RUN_H

/* Prints what failed with errno's text and returns 125 (guest-run's own failure status). */
int fail(const char *what);
/* Mixes the host's random bytes (hex) into the guest's pool and reseeds its generator. */
int seed_guest_random(const char *hex);
/* Makes the sandbox's pid and user namespaces (see guest-run.c). */
int start_sandbox_init(void);
/* guest-run --activate <memory> <pids> <quota us> <tmp bytes> <uid> <gid> <home> <now s> <seed> */
int activate_main(char **argv);
/* guest-run --clock <now s> */
int clock_main(const char *seconds);

#endif
