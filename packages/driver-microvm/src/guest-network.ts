/**
 * Network "egress" for a microVM: the guest kernel's own stack on a virtio-net NIC whose host
 * end is a tap in the sandbox namespace of @polydev/egress's router network (router-network.ts,
 * shared with the gvisor driver), bridged onto the veth to the router:
 *
 *   guest eth0 10.0.3.2 ── QEMU ── tap vm0 ─ br0 ─ s0 ═══ veth ═══ r0 10.0.3.1 ── router ── tap0 ── slirp4netns
 *                          (netns-sandbox: QEMU's own namespace)    (netns-router: nftables, NAT)
 *
 * So the guest's packets meet the same deny list (link-local metadata, the host's own addresses;
 * slirp4netns --disable-host-loopback keeps the host's loopback out) as a gvisor sandbox's. QEMU
 * itself runs in the sandbox namespace, which has no address but lo's and no route: a QEMU the
 * guest took over can send nothing the guest could not, and nothing of the host's network is
 * in reach of its own sockets. The tap belongs to the VM's uid (QEMU opens it unprivileged, and
 * again on every resume); the namespaces are files in the sandbox's directory, so they outlive
 * a server restart and a hibernation. The guest configures its side after the restore (the
 * link's "network" request, guest-nic.ts): the boot snapshot's NIC is down and unaddressed.
 */
import { join } from "node:path";
import type { ControlMessage } from "@polydev/agent";
import { PolydevError } from "@polydev/core";
import {
  ROUTER_ADDRESS,
  ROUTER_DNS,
  routerNetworkMissing,
  routerNetworkRunning,
  SANDBOX_NETNS,
  setUpRouterNetwork,
  tearDownRouterNetwork,
} from "@polydev/egress";
import type { NetworkRequest } from "./link-protocol.js";
import type { VmNetwork } from "./vmm.js";

/** QEMU's tap in the sandbox namespace. */
export const GUEST_TAP = "vm0";
const GUEST_ADDRESS = "10.0.3.2";

/** The sandbox namespace around s0: a bridge of the veth and the VM's tap, and nothing routed. */
function sandboxSetup(uid: number, gid: number): string {
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || uid <= 0 || gid <= 0) {
    throw new PolydevError("internal", "the VM's uid and gid must be positive integers");
  }
  return [
    "set -e",
    "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
    "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
    "ip link set lo up",
    "ip link add br0 type bridge",
    `ip tuntap add dev ${GUEST_TAP} mode tap user ${uid} group ${gid}`,
    `ip link set ${GUEST_TAP} master br0`,
    "ip link set s0 master br0",
    `ip link set ${GUEST_TAP} up`,
    "ip link set s0 up",
    "ip link set br0 up",
  ].join("\n");
}

/** What the host lacks for network "egress", or undefined when it has everything. */
export function guestNetworkMissing(): string | undefined {
  return routerNetworkMissing();
}

/**
 * Builds the sandbox's namespaces, its tap (the VM's uid's) and slirp4netns (which joins
 * `cgroupProcs`, the VM's host cgroup: what the sandbox makes it buffer counts against the
 * sandbox). On failure, removes what it made.
 */
export async function setUpGuestNetwork(
  dir: string,
  ids: { uid: number; gid: number },
  cgroupProcs: string[],
  signal?: AbortSignal,
): Promise<void> {
  await setUpRouterNetwork(dir, {
    sandboxSetup: sandboxSetup(ids.uid, ids.gid),
    slirpCgroupProcs: cgroupProcs,
    signal,
  });
}

/**
 * Before a resume: the network as create left it, or (the host rebooted, slirp4netns died) a new
 * one in its place. The guest keeps its address and route; connections it had are gone with the
 * old slirp4netns's NAT.
 */
export async function ensureGuestNetwork(
  dir: string,
  ids: { uid: number; gid: number },
  cgroupProcs: string[],
  signal?: AbortSignal,
): Promise<void> {
  if (await routerNetworkRunning(dir)) return;
  await tearDownRouterNetwork(dir);
  await setUpGuestNetwork(dir, ids, cgroupProcs, signal);
}

/** The VMM's side of an egress sandbox's NIC (its namespace and tap, both in `dir`). */
export function guestVmNetwork(dir: string): VmNetwork {
  return { netns: join(dir, SANDBOX_NETNS), tap: GUEST_TAP };
}

/** What the guest applies to its NIC after the restore. */
export function guestNetworkRequest(): ControlMessage {
  const request: NetworkRequest = {
    type: "network",
    address: `${GUEST_ADDRESS}/24`,
    gateway: ROUTER_ADDRESS,
    nameserver: ROUTER_DNS,
  };
  return { ...request };
}

/** Stops slirp4netns and unbinds the namespaces (the tap and bridge go with them). */
export function tearDownGuestNetwork(dir: string): Promise<void> {
  return tearDownRouterNetwork(dir);
}
