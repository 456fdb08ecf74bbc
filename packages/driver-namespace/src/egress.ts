/**
 * Network "egress": slirp4netns serves the sandbox's network namespace from the host's, giving
 * it a tap0 with NAT to the outside (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3) and no
 * route to the host's loopback services.
 */
import type { ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";

export const SLIRP4NETNS = "/usr/bin/slirp4netns";

export function egressAvailable(): boolean {
  try {
    accessSync(SLIRP4NETNS, constants.X_OK);
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
 */
export function slirpArgs(initPid: number): string[] {
  return [
    SLIRP4NETNS,
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    "--enable-sandbox",
    "--enable-seccomp",
    "--ready-fd=3",
    "--netns-type=path",
    `/proc/${initPid}/ns/net`,
    "tap0",
  ];
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
