/**
 * Network "egress": slirp4netns serves a sandbox's network namespace from the host's, giving
 * it a tap0 with NAT to the outside (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3) and no
 * route to the host's loopback services. Shared by the namespace driver (bubblewrap's network
 * namespace, by its init's pid) and the gvisor driver (a router namespace bound to a file).
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";

export const SLIRP4NETNS = "/usr/bin/slirp4netns";
const UNSHARE = "/usr/bin/unshare";
/**
 * How large slirp4netns may make the sandbox's console log (which it shares with bubblewrap):
 * what it prints is the host's business, but a sandbox can provoke warnings from it.
 */
export const SLIRP_CONSOLE_LIMIT_BYTES = 1024 * 1024;

/**
 * Runs as root on the host, between the server and slirp4netns ($1: the file size limit in KiB,
 * $2: how many cgroup.procs files follow, then those, then slirp4netns's argv):
 * - closes every descriptor but stdio and the ready pipe (fd 3): whatever the server holds
 *   without close-on-exec (descriptors it inherited, a terminal master) would otherwise reach
 *   a process that talks to the sandbox all day;
 * - caps the size of files it writes (its console) and ignores SIGXFSZ, so a write past the cap
 *   fails instead of killing it;
 * - joins the sandbox's cgroups (its memory and pids count against the sandbox);
 * - execs with an empty environment (`exec -c`).
 * bash, not sh: closing a descriptor above 9 needs `exec {n}>&-`.
 */
const SLIRP_LAUNCH = [
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a template.
  'for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 3 ] && [ -e "$fd" ]; then exec {n}>&-; fi; done',
  "trap '' XFSZ",
  'ulimit -f "$1" || exit 125',
  'n=$2; shift 2; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done',
  'exec -c "$@"',
].join("\n");

export function egressAvailable(): boolean {
  try {
    accessSync(SLIRP4NETNS, constants.X_OK);
    accessSync(UNSHARE, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * bubblewrap's network namespace belongs to the sandbox's outer user namespace, which no process
 * lives in, so slirp4netns cannot join a user namespace that owns it. It joins the network
 * namespace by path instead, with host root's rights, and then gives those up: --enable-sandbox
 * drops every capability and pivots into an empty root, --enable-seccomp limits its syscalls.
 *
 * It starts in a mount namespace of its own with private propagation: its sandbox detaches the
 * old root without making every mount private first, and that unmount otherwise propagates to
 * the host's shared mounts (every `ip netns` namespace under /run/netns vanished with it).
 */
export function slirpArgs(netnsPath: string): string[] {
  return [
    UNSHARE,
    "--mount",
    "--propagation=private",
    SLIRP4NETNS,
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    "--enable-sandbox",
    "--enable-seccomp",
    "--ready-fd=3",
    "--netns-type=path",
    netnsPath,
    "tap0",
  ];
}

/**
 * Starts slirp4netns for the network namespace at `netnsPath` (`/proc/<pid>/ns/net` or a file it
 * is bound to), inside the sandbox's cgroups, with stdout and stderr on the console log (or
 * "ignore") and fd 3 the ready pipe. Nothing of the request or the sandbox reaches it but that
 * path, which the driver makes.
 */
export function spawnSlirp(
  netnsPath: string,
  procsFiles: string[],
  consoleFd: number | "ignore",
): ChildProcess {
  const child = spawn(
    "/bin/bash",
    [
      "-c",
      SLIRP_LAUNCH,
      "polydev-slirp",
      String(SLIRP_CONSOLE_LIMIT_BYTES / 1024),
      String(procsFiles.length),
      ...procsFiles,
      ...slirpArgs(netnsPath),
    ],
    {
      env: {},
      cwd: "/",
      stdio: ["ignore", consoleFd, consoleFd, "pipe"],
      // Its own session, no --die-with-parent: sandboxes outlive a server restart and are
      // re-adopted from their meta.json.
      detached: true,
    },
  );
  child.unref();
  return child;
}

/** Resolves once slirp4netns has configured tap0 (it writes to its ready fd). */
export function slirpReady(slirp: ChildProcess, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`slirp4netns was not ready after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = (): void => done(new Error("aborted"));
    const done = (error?: Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      slirp.stdio[3]?.destroy();
      slirp.removeAllListeners("exit");
      if (error) reject(error);
      else if (slirp.pid === undefined) reject(new Error("slirp4netns did not start"));
      else resolve(slirp.pid);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    slirp.stdio[3]?.once("data", () => done());
    slirp.once("error", (error) => done(error));
    slirp.once("exit", (code, exitSignal) => done(new Error(`slirp4netns exited (${exitSignal ?? code})`)));
  });
}
