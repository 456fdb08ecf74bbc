/**
 * The host side of network "egress" for drivers whose sandbox brings its own network stack (the
 * gvisor driver's Sentry, the microvm driver's guest kernel): two namespaces per sandbox, each
 * bound to a file in the sandbox's directory (no process holds them, so they outlive a server
 * restart):
 *
 *   sandbox side ── s0 ═══ veth ═══ r0 10.0.3.1 ── router ── tap0 ── slirp4netns ── outside
 *   (netns-sandbox: the driver's)    (netns-router: the host kernel forwards, nftables filters)
 *
 * The driver says what the sandbox namespace holds around s0 (an address for the Sentry, a bridge
 * to a VM's tap). The router's nftables rules reject what the namespace driver also denies
 * (link-local metadata, the host's own addresses; see deniedDestinations), drop anything
 * addressed to the router itself, and masquerade the rest onto slirp4netns's tap0, which NATs it
 * out through the host without a route to the host's loopback (--disable-host-loopback). Neither
 * namespace has IPv6. Every command here is the driver's own: fixed scripts and paths it made.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { PolydevError } from "@polydev/core";
import { deniedDestinations } from "./host-denied.js";
import { egressAvailable, SLIRP4NETNS, slirpReady, spawnSlirp } from "./slirp.js";

const run = promisify(execFile);
const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NFT = "/usr/sbin/nft";
export const ROUTER_NETNS = "netns-router";
export const SANDBOX_NETNS = "netns-sandbox";
const SLIRP_PID_FILE = "slirp.pid";
const SLIRP_READY_TIMEOUT_MS = 10_000;
/** The router's end of the veth; the sandbox side routes through it. */
export const ROUTER_ADDRESS = "10.0.3.1";
const ROUTER_MAC = "02:00:0a:00:03:01";
/** slirp4netns's resolver, reached through the router like any outside address. */
export const ROUTER_DNS = "10.0.2.3";
/** Only IPv4 CIDRs reach the ruleset: each is checked before it is written into it. */
const IPV4_CIDR =
  /^(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\/(?:3[0-2]|[12]?[0-9])$/;

const ROUTER_SETUP = [
  "set -e",
  "ip link set lo up",
  // A fixed hardware address: a sandbox whose router is rebuilt (a resume after slirp4netns died)
  // keeps reaching it through the neighbour entry it has.
  `ip link set r0 address ${ROUTER_MAC}`,
  `ip addr add ${ROUTER_ADDRESS}/24 dev r0`,
  "ip link set r0 up",
  "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
  "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
  "echo 1 > /proc/sys/net/ipv4/ip_forward",
].join("\n");

/** What the host lacks for a router network, or undefined when it has everything. */
export function routerNetworkMissing(): string | undefined {
  if (!egressAvailable()) return `${SLIRP4NETNS} (apt-get install slirp4netns)`;
  for (const tool of [NFT, "/usr/bin/nsenter", "/usr/bin/unshare", "/usr/sbin/ip"]) {
    if (!existsSync(tool)) return tool;
  }
  return undefined;
}

/** The ruleset of the router namespace: forward out to tap0 only, never to `denied`. */
export function routerRuleset(denied: string[]): string {
  for (const cidr of denied) {
    if (!IPV4_CIDR.test(cidr)) throw new PolydevError("internal", `not an IPv4 CIDR: ${cidr}`);
  }
  return `table ip polydev {
  chain input { type filter hook input priority 0; policy drop; ct state established,related accept; }
  chain forward {
    type filter hook forward priority 0; policy drop;
    iifname "r0" oifname "tap0" ip daddr { ${denied.join(", ")} } reject with icmp type admin-prohibited;
    iifname "r0" oifname "tap0" accept;
    iifname "tap0" oifname "r0" ct state established,related accept;
  }
  chain postrouting { type nat hook postrouting priority 100; oifname "tap0" masquerade; }
}
`;
}

async function tool(argv: string[], what: string): Promise<void> {
  const [file, ...args] = argv;
  if (file === undefined) return;
  await run(file, args, { env: { PATH: HOST_PATH }, cwd: "/" }).catch((error: unknown) => {
    throw new PolydevError(
      "sandbox_failed",
      `cannot set up the sandbox's network (${what}): ${String(error)}`,
      { cause: error },
    );
  });
}

export interface RouterNetworkOptions {
  /**
   * A fixed shell script of the driver's, run in the sandbox namespace once its end of the veth
   * (s0) is there: what the sandbox side holds around it.
   */
  sandboxSetup: string;
  /** cgroup.procs files slirp4netns joins before it runs (the sandbox's host cgroups). */
  slirpCgroupProcs?: string[];
  signal?: AbortSignal | undefined;
}

export interface RouterNetwork {
  /** The namespace the sandbox's own stack lives in (a file in `dir`). */
  sandboxNetns: string;
  slirpPid: number;
}

/** Builds both namespaces and starts slirp4netns; on failure, removes what it made. */
export async function setUpRouterNetwork(dir: string, options: RouterNetworkOptions): Promise<RouterNetwork> {
  const router = join(dir, ROUTER_NETNS);
  const sandbox = join(dir, SANDBOX_NETNS);
  let slirp: ReturnType<typeof spawnSlirp> | undefined;
  try {
    for (const file of [router, sandbox]) {
      options.signal?.throwIfAborted();
      await writeFile(file, "", { mode: 0o600 });
      await tool(["unshare", `--net=${file}`, "true"], "a network namespace");
    }
    await tool(
      [
        "nsenter",
        `--net=${router}`,
        "ip",
        "link",
        "add",
        "r0",
        "type",
        "veth",
        "peer",
        "name",
        "s0",
        "netns",
        sandbox,
      ],
      "the veth pair",
    );
    await tool(["nsenter", `--net=${router}`, "sh", "-c", ROUTER_SETUP], "the router");
    await tool(["nsenter", `--net=${sandbox}`, "sh", "-c", options.sandboxSetup], "the sandbox's side");
    const rules = join(dir, "router.nft");
    await writeFile(rules, routerRuleset(deniedDestinations()), { mode: 0o600 });
    await tool(["nsenter", `--net=${router}`, NFT, "-f", rules], "the router's rules");
    options.signal?.throwIfAborted();
    slirp = spawnSlirp(router, options.slirpCgroupProcs ?? [], "ignore");
    // Recorded before it is ready: a teardown racing this set-up finds and stops it.
    if (slirp.pid !== undefined)
      await writeFile(join(dir, SLIRP_PID_FILE), `${slirp.pid}\n`, { mode: 0o600 });
    const slirpPid = await slirpReady(slirp, SLIRP_READY_TIMEOUT_MS, options.signal).catch(
      (error: unknown) => {
        throw new PolydevError("sandbox_failed", `slirp4netns did not start: ${String(error)}`, {
          cause: error,
        });
      },
    );
    return { sandboxNetns: sandbox, slirpPid };
  } catch (error) {
    slirp?.kill("SIGKILL");
    await tearDownRouterNetwork(dir);
    throw error;
  }
}

/** slirp4netns's pid as setUpRouterNetwork recorded it (the driver's own file). */
export async function recordedSlirpPid(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, SLIRP_PID_FILE), "utf8").catch(() => "");
  return /^[1-9][0-9]{0,9}\n$/.test(text) ? Number(text) : undefined;
}

/** Whether the sandbox's slirp4netns still runs (so its namespaces are still there). */
export async function routerNetworkRunning(dir: string): Promise<boolean> {
  const pid = await recordedSlirpPid(dir);
  if (pid === undefined) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.split("\0").includes(join(dir, ROUTER_NETNS)) && existsSync(join(dir, SANDBOX_NETNS));
}

/**
 * Stops slirp4netns (only the process whose command line names this sandbox's router, never a
 * recycled pid) and unbinds both namespaces; what is gone already is skipped. The namespaces'
 * interfaces go with them once nothing else holds them (a VM's QEMU must be gone first).
 */
export async function tearDownRouterNetwork(dir: string): Promise<void> {
  const router = join(dir, ROUTER_NETNS);
  const pid = await recordedSlirpPid(dir);
  if (pid !== undefined) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.split("\0").includes(router)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone between the check and the kill.
      }
    }
  }
  for (const name of [ROUTER_NETNS, SANDBOX_NETNS]) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    await run("umount", [file], { env: { PATH: HOST_PATH } }).catch(() =>
      run("umount", ["-l", file], { env: { PATH: HOST_PATH } }).catch(() => undefined),
    );
    await rm(file, { force: true });
  }
  await rm(join(dir, SLIRP_PID_FILE), { force: true });
  await rm(join(dir, "router.nft"), { force: true });
}
