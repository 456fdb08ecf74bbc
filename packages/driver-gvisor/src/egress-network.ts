/**
 * Network "egress" for a gVisor sandbox. runsc's own network stack (the Sentry's netstack,
 * `--network=sandbox`) takes every interface of the network namespace it is given, so the
 * filtering cannot live there: two namespaces per sandbox, each bound to a file in the
 * sandbox's directory (no process holds them, so they outlive a server restart):
 *
 *   Sentry ── s0 10.0.3.2 ═══ veth ═══ r0 10.0.3.1 ── router ── tap0 ── slirp4netns ── outside
 *            (netns-sandbox)           (netns-router: the host kernel forwards, nftables filters)
 *
 * The router's nftables rules reject what the namespace driver also denies (link-local metadata,
 * the host's own addresses; see @polydev/egress deniedDestinations), drop anything addressed
 * to the router itself, and masquerade the rest onto slirp4netns's tap0, which NATs it out
 * through the host without a route to the host's loopback (--disable-host-loopback). Neither
 * namespace has IPv6. Every command here is the driver's own: fixed scripts and paths it made.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { PolydevError } from "@polydev/core";
import { deniedDestinations, egressAvailable, SLIRP4NETNS, slirpReady, spawnSlirp } from "@polydev/egress";

const run = promisify(execFile);
const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NFT = "/usr/sbin/nft";
const ROUTER_NETNS = "netns-router";
const SANDBOX_NETNS = "netns-sandbox";
const SLIRP_READY_TIMEOUT_MS = 10_000;
/** Only IPv4 CIDRs reach the ruleset: each is checked before it is written into it. */
const IPV4_CIDR =
  /^(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\/(?:3[0-2]|[12]?[0-9])$/;

const ROUTER_SETUP = [
  "set -e",
  "ip link set lo up",
  "ip addr add 10.0.3.1/24 dev r0",
  "ip link set r0 up",
  "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
  "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
  "echo 1 > /proc/sys/net/ipv4/ip_forward",
].join("\n");

const SANDBOX_SETUP = [
  "set -e",
  "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
  "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
  "ip link set lo up",
  "ip addr add 10.0.3.2/24 dev s0",
  "ip link set s0 up",
  "ip route add default via 10.0.3.1",
].join("\n");

/** What the host lacks for network "egress", or undefined when it has everything. */
export function egressNetworkMissing(): string | undefined {
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
      {
        cause: error,
      },
    );
  });
}

export interface EgressNetwork {
  /** The namespace runsc's Sentry gets (OCI linux.namespaces network path). */
  sandboxNetns: string;
  slirpPid: number;
}

/** Builds both namespaces and starts slirp4netns; on failure, removes what it made. */
export async function setUpEgressNetwork(dir: string, signal?: AbortSignal): Promise<EgressNetwork> {
  const router = join(dir, ROUTER_NETNS);
  const sandbox = join(dir, SANDBOX_NETNS);
  try {
    for (const file of [router, sandbox]) {
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
    await tool(["nsenter", `--net=${sandbox}`, "sh", "-c", SANDBOX_SETUP], "the sandbox's interface");
    const slirp = spawnSlirp(router, [], "ignore");
    const slirpPid = await slirpReady(slirp, SLIRP_READY_TIMEOUT_MS, signal).catch((error: unknown) => {
      slirp.kill("SIGKILL");
      throw new PolydevError("sandbox_failed", `slirp4netns did not start: ${String(error)}`, {
        cause: error,
      });
    });
    await writeFile(join(dir, "slirp.pid"), `${slirpPid}\n`, { mode: 0o600 });
    const rules = join(dir, "router.nft");
    await writeFile(rules, routerRuleset(deniedDestinations()), { mode: 0o600 });
    await tool(["nsenter", `--net=${router}`, NFT, "-f", rules], "the router's rules");
    return { sandboxNetns: sandbox, slirpPid };
  } catch (error) {
    await tearDownEgressNetwork(dir);
    throw error;
  }
}

/**
 * Puts slirp4netns into the sandbox's own host cgroups (made by runsc, named by `cgroupsPath`),
 * once they exist: what a sandbox makes it buffer counts against that sandbox's memory and
 * pids, as the namespace driver does. Every hierarchy that has the cgroup gets it (v1: memory,
 * pids, cpu…; v2: the one tree).
 */
export async function moveSlirpIntoCgroups(dir: string, cgroupsPath: string): Promise<void> {
  const pid = await slirpPid(dir);
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

/** slirp4netns's pid as setUpEgressNetwork recorded it (the driver's own file). */
async function slirpPid(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, "slirp.pid"), "utf8").catch(() => "");
  return /^[1-9][0-9]{0,9}\n$/.test(text) ? Number(text) : undefined;
}

/**
 * Stops slirp4netns (only the process whose command line names this sandbox's router, never a
 * recycled pid) and unbinds both namespaces; what is gone already is skipped.
 */
export async function tearDownEgressNetwork(dir: string): Promise<void> {
  const router = join(dir, ROUTER_NETNS);
  const pid = await slirpPid(dir);
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
  await rm(join(dir, "slirp.pid"), { force: true });
}
