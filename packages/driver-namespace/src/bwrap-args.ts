import { existsSync } from "node:fs";
import { SANDBOX_HOME, SANDBOX_UID } from "./launcher.js";

/**
 * Host directories bubblewrap binds by descriptor (it runs as the sandbox's uid, which cannot
 * open them by path): the sandbox's /etc, then, with an exec server, its socket directory.
 */
export const FIRST_DATA_FD = 4;
export const ETC_DIR_FD = FIRST_DATA_FD;
export const EXEC_DIR_FD = FIRST_DATA_FD + 1;
/** Where the exec server runs from and listens, inside the sandbox. */
export const EXEC_SERVER_IN_SANDBOX = "/run/polydev-init";
export const EXEC_DIR_IN_SANDBOX = "/run/polydev";
export const EXEC_SOCKET_NAME = "exec.sock";

interface HostLayout {
  links: (readonly [string, string])[];
}
let layout: HostLayout | undefined;

/** Which of the host's merged-/usr links exist: they do not come and go, so looked up once. */
function hostLayout(): HostLayout {
  layout ??= {
    links: (
      [
        ["/bin", "usr/bin"],
        ["/sbin", "usr/sbin"],
        ["/lib", "usr/lib"],
        ["/lib64", "usr/lib64"],
      ] as const
    ).filter(([link]) => existsSync(link)),
  };
  return layout;
}

/**
 * The sandbox's pid 1 when no exec server is built (native/exec-server.c is the usual init and
 * does the same, plus serving execs), in place of bubblewrap's reaper, which exits as soon as its one child
 * does: a sandbox user running `pkill sleep` or `kill -9 -1` would end the whole sandbox. A
 * namespace's init never receives signals it does not handle from inside, this one ignores the
 * rest, keeps one sleeping child to wait on (respawned if killed), and reaps every orphan the
 * kernel hands it while it waits. It prints `ready` once it runs inside the finished root.
 */
export const SANDBOX_INIT =
  'echo ready; trap "" HUP INT QUIT TERM USR1 USR2; while :; do sleep 2147483647 & wait; done';

/**
 * The sandbox's root: the host's /usr (read-only, so its Node, git, curl and Python are there),
 * its own copy of /etc (see EtcSnapshots), fresh /proc and /dev, a private /tmp and a
 * home that is a tmpfs of exactly `diskBytes`. Every namespace is new; the init prints `ready`
 * once bubblewrap has finished building all of this — that line is the readiness handshake.
 *
 * The home being a tmpfs is deliberate: its size is an exact disk limit with no quota support
 * needed from the host filesystem, it lives exactly as long as the sandbox (its mount namespace),
 * and its pages are charged to the memory cgroup of the process that writes them, which is
 * always a sandbox process. So a sandbox's files count against its memory limit as well: with
 * memoryMb 512 and diskMb 1024, a full home means the processes are OOM-killed long before the
 * home is full. /tmp, /var/tmp and /run are unsized tmpfs for the same reason: the memory
 * limit bounds them.
 */
export function bwrapArgs(
  diskBytes: number,
  /** The exec server's host copy (see ExecDirs.installInit), or undefined for the shell init. */
  options: { execServer: string | undefined },
): string[] {
  const args = [
    // user, pid, net, ipc, uts and cgroup. "none" keeps the new netns as it is (loopback only);
    // "egress" gets slirp4netns attached to it afterwards.
    "--unshare-all",
    // No user namespaces inside: creating one is how an unprivileged process reaches most of
    // the kernel's rarely used, often buggy code (nftables, mounts of every kind, ...), and a
    // dev box never needs it. bubblewrap limits its own user namespace to one child and runs
    // the sandbox in that child, which cannot raise the limit. Needs an explicit --unshare-user.
    "--unshare-user",
    "--disable-userns",
    "--new-session",
    "--uid",
    String(SANDBOX_UID),
    "--gid",
    String(SANDBOX_UID),
    "--hostname",
    "sandbox",
    "--ro-bind",
    "/usr",
    "/usr",
  ];
  const host = hostLayout();
  for (const [link, target] of host.links) args.push("--symlink", target, link);
  // A whole directory that nothing ever renames over: no mount inside it to detach.
  args.push("--ro-bind-fd", String(ETC_DIR_FD), "/etc");
  args.push(
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--perms",
    "1777",
    "--tmpfs",
    "/tmp",
    "--perms",
    "1777",
    "--tmpfs",
    "/var/tmp",
    "--tmpfs",
    "/run",
  );
  if (options.execServer !== undefined) {
    // The socket directory comes in as a descriptor opened by root and is the host's own, so
    // the host connects to it without entering anything. The binary is bound read-only from
    // one root-owned host copy that every sandbox shares (page cache included).
    args.push(
      "--bind-fd",
      String(EXEC_DIR_FD),
      EXEC_DIR_IN_SANDBOX,
      "--ro-bind",
      options.execServer,
      EXEC_SERVER_IN_SANDBOX,
    );
  }
  args.push(
    "--size",
    String(diskBytes),
    "--perms",
    "0755",
    "--tmpfs",
    SANDBOX_HOME,
    "--chdir",
    SANDBOX_HOME,
    "--info-fd",
    "3",
    "--as-pid-1",
    "--",
    ...(options.execServer !== undefined
      ? [EXEC_SERVER_IN_SANDBOX, `${EXEC_DIR_IN_SANDBOX}/${EXEC_SOCKET_NAME}`]
      : ["/bin/sh", "-c", SANDBOX_INIT]),
  );
  return args;
}
