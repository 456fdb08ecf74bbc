/**
 * devices.*, syscalls.* and kernel.*: a minimal /dev, no mounts, devices or nested user
 * namespaces, the system calls a dev box never needs refused (while ptrace of one's own child
 * works), and the kernel's host-wide knobs out of reach.
 */

import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { expect } from "vitest";
import type { EscapeProbe, EscapeProbeContext } from "./escape-probe-context.js";
import { OPEN_PATHS_SCRIPT, probeProgram, SYSCALLS_SCRIPT } from "./escape-probe-scripts.js";

type Calls = Record<string, { allowed: boolean; errno: string | null }>;
type OpenResult = Record<string, { read?: string; list?: string[]; readError?: string; write?: string }>;

/** Runs the named calls in sandbox A; every one of them must be refused. */
function refused(...calls: string[]) {
  return async (context: EscapeProbeContext): Promise<void> => {
    const { connection } = await context.sandbox("a");
    const seen = await context.python<Calls>(connection, SYSCALLS_SCRIPT, { calls });
    const allowed = Object.entries(seen)
      .filter(([, result]) => result.allowed)
      .map(([name, result]) => `${name}${result.errno ? ` (${result.errno})` : ""}`);
    expect(allowed, "calls the kernel let through inside the sandbox").toEqual([]);
  };
}

/** Opens each path for writing, without writing: none may open. */
function unwritable(paths: string[]) {
  return async (context: EscapeProbeContext): Promise<void> => {
    const { connection } = await context.sandbox("a");
    const seen = await context.python<Record<string, string>>(
      connection,
      probeProgram(`
out = {}
for path in ARG["paths"]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        out[path] = "opened for writing"
    except OSError as error:
        out[path] = errname(error.errno)
emit(out)`),
      { paths },
    );
    const opened = Object.entries(seen).filter(([, result]) => result === "opened for writing");
    expect(opened, "host-wide files opened for writing").toEqual([]);
  };
}

/** Reads each path: none may give any content. */
function unreadable(paths: string[]) {
  return async (context: EscapeProbeContext): Promise<void> => {
    const { connection } = await context.sandbox("a");
    const seen = await context.python<OpenResult>(connection, OPEN_PATHS_SCRIPT, { paths, readBytes: 64 });
    const readable = Object.entries(seen).filter(
      ([, result]) => (result.read !== undefined && result.read.length > 0) || (result.list ?? []).length > 0,
    );
    expect(
      readable.map(([path]) => path),
      "host-only kernel data readable inside",
    ).toEqual([]);
  };
}

/** Character devices a sandbox may have: null, zero, full, random, urandom, tty and its own ptys. */
const ALLOWED_DEVICES = new Set(["1:3", "1:5", "1:7", "1:8", "1:9", "5:0", "5:2"]);
const PTY_MAJORS = new Set([136, 137, 138, 139, 140, 141, 142, 143]);

export const kernelProbes: EscapeProbe[] = [
  {
    id: "devices.dev-minimal",
    title: "/dev holds only null, zero, full, random, urandom, tty and the sandbox's own ptys",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const seen = await context.python<{ path: string; kind: string; major: number; minor: number }[]>(
        connection,
        probeProgram(`
import stat as S
out = []
for root, dirs, files in os.walk("/dev"):
    for name in files + dirs:
        path = os.path.join(root, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if S.S_ISCHR(st.st_mode) or S.S_ISBLK(st.st_mode):
            out.append({"path": path, "kind": "char" if S.S_ISCHR(st.st_mode) else "block",
                        "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)})
emit(out)`),
      );
      const extra = seen.filter(
        (device) =>
          device.kind === "block" ||
          (!ALLOWED_DEVICES.has(`${device.major}:${device.minor}`) && !PTY_MAJORS.has(device.major)),
      );
      expect(extra, "devices beyond the minimal set").toEqual([]);
    },
  },
  {
    id: "devices.no-kvm",
    title: "/dev/kvm cannot be opened",
    run: unreadable(["/dev/kvm"]),
  },
  {
    id: "devices.no-kmsg-mem-port",
    title: "/dev/kmsg, /dev/mem, /dev/kmem and /dev/port cannot be read",
    run: unreadable(["/dev/kmsg", "/dev/mem", "/dev/kmem", "/dev/port"]),
  },
  {
    id: "devices.no-tun",
    title: "/dev/net/tun, vhost and loop-control cannot be opened",
    async run(context) {
      await unwritable(["/dev/net/tun", "/dev/vhost-net", "/dev/vhost-vsock", "/dev/loop-control"])(context);
    },
  },
  {
    id: "devices.mknod",
    title: "mknod of character and block devices fails",
    run: refused("mknod_char", "mknod_block"),
  },
  {
    id: "devices.mount",
    title: "mount (tmpfs and bind) fails",
    run: refused("mount_tmpfs", "mount_bind"),
  },
  {
    id: "devices.nested-user-namespace",
    title: "unshare(CLONE_NEWUSER) fails, so no nested namespace hands out capabilities",
    async run(context) {
      await refused("unshare_user")(context);
      const { connection } = await context.sandbox("a");
      const shell = await context.sh(connection, "unshare -Ur true 2>/dev/null && echo created; echo end");
      expect(shell.stdout).toBe("end\n");
    },
  },
  {
    id: "syscalls.kexec",
    title: "kexec_load and kexec_file_load fail",
    run: refused("kexec_load", "kexec_file_load"),
  },
  {
    id: "syscalls.kernel-modules",
    title: "init_module, finit_module and delete_module fail",
    run: refused("init_module", "finit_module", "delete_module"),
  },
  {
    id: "syscalls.bpf",
    title: "bpf (map create, program load) fails",
    run: refused("bpf_map_create", "bpf_prog_load"),
  },
  {
    id: "syscalls.perf-event-open",
    title: "perf_event_open fails, even user-space-only counting of oneself",
    run: refused("perf_event_open"),
  },
  {
    id: "syscalls.userfaultfd",
    title: "userfaultfd fails, even in user-mode-only mode",
    run: refused("userfaultfd"),
  },
  { id: "syscalls.keyring", title: "add_key and keyctl fail", run: refused("add_key", "keyctl") },
  { id: "syscalls.io-uring", title: "io_uring_setup fails", run: refused("io_uring_setup") },
  { id: "syscalls.open-by-handle-at", title: "open_by_handle_at fails", run: refused("open_by_handle_at") },
  {
    id: "syscalls.host-clock-reboot-swap",
    title: "clock_settime, settimeofday, reboot, swapon, acct and syslog fail",
    run: refused("clock_settime", "settimeofday", "reboot", "swapon", "acct", "syslog_read"),
  },
  {
    id: "syscalls.ptrace-own-child-allowed",
    title: "ptrace of one's own child still works (gdb, strace)",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const seen = await context.python<Calls>(connection, SYSCALLS_SCRIPT, { calls: ["ptrace_own_child"] });
      expect(seen.ptrace_own_child).toEqual({ allowed: true, errno: null });
      const strace = await context.sh(
        connection,
        "if command -v strace >/dev/null; then strace -f -o /dev/null true && echo traced; else echo traced; fi",
      );
      expect(strace.stdout).toBe("traced\n");
    },
  },
  {
    id: "kernel.proc-sys-write",
    title: "host-wide sysctls under /proc/sys cannot be opened for writing",
    run: unwritable([
      "/proc/sys/kernel/modprobe",
      "/proc/sys/kernel/panic",
      "/proc/sys/kernel/sysrq",
      "/proc/sys/kernel/randomize_va_space",
      "/proc/sys/kernel/kptr_restrict",
      "/proc/sys/kernel/unprivileged_bpf_disabled",
      "/proc/sys/vm/drop_caches",
      "/proc/sys/vm/overcommit_memory",
      "/proc/sys/fs/file-max",
      "/proc/sys/fs/protected_symlinks",
    ]),
  },
  {
    id: "kernel.core-pattern",
    title: "core_pattern cannot be opened for writing and stays the host's",
    async run(context) {
      const before = await readFile("/proc/sys/kernel/core_pattern", "utf8").catch(() => "");
      await unwritable(["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/core_uses_pid"])(context);
      expect(await readFile("/proc/sys/kernel/core_pattern", "utf8").catch(() => "")).toBe(before);
    },
  },
  {
    id: "kernel.sysrq-trigger",
    title: "/proc/sysrq-trigger cannot be opened for writing",
    run: unwritable(["/proc/sysrq-trigger"]),
  },
  {
    id: "kernel.kcore-kmem",
    title: "/proc/kcore, /dev/core, /proc/kmsg and the page maps cannot be read",
    run: unreadable(["/proc/kcore", "/dev/core", "/proc/kmsg", "/proc/kpagecount", "/proc/kpageflags"]),
  },
  {
    id: "kernel.sys-kernel",
    title: "/sys/kernel knobs (uevent_helper, debugfs, securityfs, power) are out of reach",
    async run(context) {
      await unwritable([
        "/sys/kernel/uevent_helper",
        "/sys/kernel/profiling",
        "/sys/power/state",
        "/sys/kernel/mm/transparent_hugepage/enabled",
      ])(context);
      await unreadable(["/sys/kernel/debug", "/sys/kernel/security", "/sys/kernel/tracing"])(context);
    },
  },
  {
    id: "kernel.sys-firmware",
    title: "firmware tables and identifiers under /sys cannot be read",
    run: unreadable([
      "/sys/firmware/efi/efivars",
      "/sys/firmware/dmi/tables/DMI",
      "/sys/firmware/acpi/tables/DSDT",
      "/sys/class/dmi/id/product_uuid",
      "/sys/class/dmi/id/product_serial",
    ]),
  },
  {
    id: "kernel.dmesg",
    title: "the kernel log cannot be read (syslog, /dev/kmsg, dmesg)",
    async run(context) {
      await refused("syslog_read")(context);
      const { connection } = await context.sandbox("a");
      const shell = await context.sh(connection, "dmesg >/dev/null 2>&1 && echo readable; echo end");
      expect(shell.stdout).toBe("end\n");
    },
  },
  {
    id: "kernel.kallsyms",
    title: "/proc/kallsyms shows no kernel addresses",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const seen = await context.sh(
        connection,
        "head -n 200 /proc/kallsyms 2>/dev/null | cut -d' ' -f1 | sort -u",
      );
      const addresses = seen.stdout.split("\n").filter((line) => line.length > 0);
      expect(addresses.filter((address) => !/^0+$/.test(address))).toEqual([]);
    },
  },
  {
    id: "kernel.hostname",
    title: "changing the hostname fails or stays inside the sandbox",
    async run(context) {
      const before = hostname();
      const { connection } = await context.sandbox("a");
      await context.python<Calls>(connection, SYSCALLS_SCRIPT, {
        calls: ["sethostname"],
        hostname: "polydev-escape-probe",
      });
      await context.sh(connection, "hostname polydev-escape-shell 2>/dev/null; true");
      expect(hostname()).toBe(before);
      expect((await readFile("/proc/sys/kernel/hostname", "utf8")).trim()).toBe(before);
    },
  },
];
