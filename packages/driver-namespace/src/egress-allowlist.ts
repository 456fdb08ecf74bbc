/**
 * Network "allowlist": the sandbox's own network namespace (bubblewrap's, with only lo) is
 * confined by the exec server's --egress-setup (native/egress-setup.c) from the host, once, before
 * create returns: every IPv4 address is local to lo, and a fixed nftables ruleset sends TCP
 * connections to the in-sandbox relay's TCP port and DNS (port 53, UDP and TCP) to its DNS port,
 * rejecting everything else. The relay (native/egress-relay.c, started by
 * `SandboxEgress.intercept`) carries each to the host. The rules live in the namespace, so a
 * server that re-adopts a running sandbox has nothing to redo.
 */
import { accessSync, constants } from "node:fs";
import { runNetworkHelper } from "./network-helper.js";

export const NFT = "/usr/sbin/nft";
/**
 * The relay's ports on the sandbox's loopback (below the ephemeral range, so no outgoing
 * connection's local port takes them first). A sandbox process that binds them first only
 * intercepts its own sandbox's traffic, and the relay then fails to start.
 */
export const EGRESS_RELAY_TCP_PORT = 15001;
export const EGRESS_RELAY_DNS_PORT = 15053;

export function allowlistAvailable(): boolean {
  try {
    accessSync(NFT, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function setupAllowlist(binary: string, initPid: number): Promise<void> {
  return runNetworkHelper(
    binary,
    [
      "--egress-setup",
      `/proc/${initPid}/ns/net`,
      String(EGRESS_RELAY_TCP_PORT),
      String(EGRESS_RELAY_DNS_PORT),
    ],
    "could not confine the sandbox's network to the allow-list relay",
  );
}
