/*
 * What the sandbox's init sets on itself before it serves anything; every process in the
 * sandbox descends from it and inherits all of it.
 *
 * - Not dumpable: the init and its relays (which never exec) cannot be ptraced, and their
 *   descriptors cannot be taken with pidfd_getfd, by sandbox processes of the same uid. Commands
 *   become dumpable again when they exec, as on any machine, so gdb and strace keep working on
 *   the user's own programs.
 * - no_new_privs: bubblewrap sets it already; set again so the guarantee does not depend on how
 *   the init was started.
 * - A seccomp deny-list of what a development machine never needs and what carries most of the
 *   kernel's attack surface reachable without privileges: kexec, modules, bpf, perf events,
 *   userfaultfd, keyrings, io_uring, mount APIs, clock and swap administration. Everything else
 *   is allowed (ptrace included). Denied calls fail with EPERM; calls of a foreign ABI (32-bit on
 *   x86-64, x32) fail with ENOSYS, so the architecture checks cannot be sidestepped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "add this architecture's AUDIT_ARCH to hardening.c"
#endif

static const int denied_syscalls[] = {
#ifdef __NR_kexec_load
    __NR_kexec_load,
#endif
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
#ifdef __NR_init_module
    __NR_init_module,
#endif
#ifdef __NR_finit_module
    __NR_finit_module,
#endif
#ifdef __NR_delete_module
    __NR_delete_module,
#endif
#ifdef __NR_create_module
    __NR_create_module,
#endif
#ifdef __NR_query_module
    __NR_query_module,
#endif
#ifdef __NR_get_kernel_syms
    __NR_get_kernel_syms,
#endif
#ifdef __NR_bpf
    __NR_bpf,
#endif
#ifdef __NR_perf_event_open
    __NR_perf_event_open,
#endif
#ifdef __NR_userfaultfd
    __NR_userfaultfd,
#endif
#ifdef __NR_add_key
    __NR_add_key,
#endif
#ifdef __NR_request_key
    __NR_request_key,
#endif
#ifdef __NR_keyctl
    __NR_keyctl,
#endif
#ifdef __NR_io_uring_setup
    __NR_io_uring_setup,
#endif
#ifdef __NR_io_uring_enter
    __NR_io_uring_enter,
#endif
#ifdef __NR_io_uring_register
    __NR_io_uring_register,
#endif
#ifdef __NR_acct
    __NR_acct,
#endif
#ifdef __NR_swapon
    __NR_swapon,
#endif
#ifdef __NR_swapoff
    __NR_swapoff,
#endif
#ifdef __NR_reboot
    __NR_reboot,
#endif
#ifdef __NR_settimeofday
    __NR_settimeofday,
#endif
#ifdef __NR_clock_settime
    __NR_clock_settime,
#endif
#ifdef __NR_clock_adjtime
    __NR_clock_adjtime,
#endif
#ifdef __NR_adjtimex
    __NR_adjtimex,
#endif
#ifdef __NR_iopl
    __NR_iopl,
#endif
#ifdef __NR_ioperm
    __NR_ioperm,
#endif
#ifdef __NR_lookup_dcookie
    __NR_lookup_dcookie,
#endif
#ifdef __NR_open_by_handle_at
    __NR_open_by_handle_at,
#endif
#ifdef __NR_quotactl
    __NR_quotactl,
#endif
#ifdef __NR_quotactl_fd
    __NR_quotactl_fd,
#endif
#ifdef __NR_nfsservctl
    __NR_nfsservctl,
#endif
#ifdef __NR_syslog
    __NR_syslog,
#endif
#ifdef __NR_vhangup
    __NR_vhangup,
#endif
#ifdef __NR_mount
    __NR_mount,
#endif
#ifdef __NR_umount2
    __NR_umount2,
#endif
#ifdef __NR_pivot_root
    __NR_pivot_root,
#endif
#ifdef __NR_open_tree
    __NR_open_tree,
#endif
#ifdef __NR_move_mount
    __NR_move_mount,
#endif
#ifdef __NR_fsopen
    __NR_fsopen,
#endif
#ifdef __NR_fsconfig
    __NR_fsconfig,
#endif
#ifdef __NR_fsmount
    __NR_fsmount,
#endif
#ifdef __NR_fspick
    __NR_fspick,
#endif
#ifdef __NR_mount_setattr
    __NR_mount_setattr,
#endif
#ifdef __NR_fanotify_init
    __NR_fanotify_init,
#endif
#ifdef __NR_uselib
    __NR_uselib,
#endif
#ifdef __NR_ustat
    __NR_ustat,
#endif
#ifdef __NR_sysfs
    __NR_sysfs,
#endif
#ifdef __NR_setns
    __NR_setns,
#endif
};

#define DENIED_COUNT (sizeof denied_syscalls / sizeof denied_syscalls[0])
/* arch check (3) + nr load (1) + x32 check (1) + one per denied call + allow + two returns. */
#define MAX_FILTER (DENIED_COUNT + 8)

static int install_seccomp(void) {
  struct sock_filter filter[MAX_FILTER];
  size_t n = 0;
  filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
  filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
  filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
  /* x32 calls are x86-64 calls with bit 30 set: same arch value, so refused by number. */
  size_t x32_check = n++;
#endif
  size_t first_check = n;
  n += DENIED_COUNT;
  size_t allow = n++;
  size_t deny_enosys = n++;
  size_t deny = n++;
#if defined(__x86_64__)
  filter[x32_check] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u,
                                                   (unsigned char)(deny_enosys - x32_check - 1), 0);
#endif
  for (size_t i = 0; i < DENIED_COUNT; i++) {
    size_t at = first_check + i;
    filter[at] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied_syscalls[i],
                                              (unsigned char)(deny - at - 1), 0);
  }
  filter[allow] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  filter[deny_enosys] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
  filter[deny] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  (void)deny_enosys;
  struct sock_fprog program = {.len = (unsigned short)n, .filter = filter};
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
}

int harden_init(void) {
  if (prctl(PR_SET_DUMPABLE, 0) != 0) return -1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return install_seccomp();
}

int harden_root_init(void) {
  if (prctl(PR_SET_DUMPABLE, 0) != 0) return -1;
  return install_seccomp();
}
