/**
 * Network "egress" for a gVisor sandbox. runsc's own network stack (the Sentry's netstack,
 * `--network=sandbox`) takes every interface of the network namespace it is given, so the
 * filtering cannot live there: the Sentry gets the sandbox namespace of @polydev/egress's router
 * network (router-network.ts), with s0 addressed 10.0.3.2 and its default route via the router:
 *
 *   Sentry ── s0 10.0.3.2 ═══ veth ═══ r0 10.0.3.1 ── router ── tap0 ── slirp4netns ── outside
 */
import { existsSync } from "node:fs";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";
import {
  ROUTER_ADDRESS,
  recordedSlirpPid,
  routerNetworkMissing,
  setUpRouterNetwork,
  tearDownRouterNetwork,
} from "@polydev/egress";

const SANDBOX_SETUP = [
  "set -e",
  "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
  "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
  "ip link set lo up",
  "ip addr add 10.0.3.2/24 dev s0",
  "ip link set s0 up",
  `ip route add default via ${ROUTER_ADDRESS}`,
].join("\n");

/** What the host lacks for network "egress", or undefined when it has everything. */
export const egressNetworkMissing = routerNetworkMissing;

export interface EgressNetwork {
  /** The namespace runsc's Sentry gets (OCI linux.namespaces network path). */
  sandboxNetns: string;
  slirpPid: number;
}

/** Builds both namespaces and starts slirp4netns; on failure, removes what it made. */
export function setUpEgressNetwork(dir: string, signal?: AbortSignal): Promise<EgressNetwork> {
  return setUpRouterNetwork(dir, { sandboxSetup: SANDBOX_SETUP, signal });
}

/**
 * Puts slirp4netns into the sandbox's own host cgroups (made by runsc, named by `cgroupsPath`),
 * once they exist: what a sandbox makes it buffer counts against that sandbox's memory and
 * pids, as the namespace driver does. Every hierarchy that has the cgroup gets it (v1: memory,
 * pids, cpu…; v2: the one tree).
 */
export async function moveSlirpIntoCgroups(dir: string, cgroupsPath: string): Promise<void> {
  const pid = await recordedSlirpPid(dir);
  if (pid === undefined) throw new PolydevError("sandbox_failed", "the sandbox's slirp4netns is gone");
  const roots = [
    "/sys/fs/cgroup",
    ...(await readdir("/sys/fs/cgroup").catch(() => [])).map((d) => join("/sys/fs/cgroup", d)),
  ];
  let joined = 0;
  for (const root of roots) {
    const procs = join(root, cgroupsPath, "cgroup.procs");
    if (!existsSync(procs)) continue;
    await writeFile(procs, `${pid}\n`).catch((error: unknown) => {
      throw new PolydevError(
        "sandbox_failed",
        `cannot put slirp4netns in the sandbox's cgroup: ${String(error)}`,
        {
          cause: error,
        },
      );
    });
    joined += 1;
  }
  if (joined === 0)
    throw new PolydevError("sandbox_failed", `the sandbox's cgroup ${cgroupsPath} does not exist`);
}

/** Stops slirp4netns and unbinds both namespaces; what is gone already is skipped. */
export const tearDownEgressNetwork = tearDownRouterNetwork;
