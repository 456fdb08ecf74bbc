/**
 * What a sandbox with `network: "egress"` must never reach, whatever the host's routes say:
 * link-local addresses (cloud metadata services hand out the machine's credentials at
 * 169.254.169.254; Alibaba's sits at 100.100.100.200) and the host's own addresses (services the
 * host binds to every interface). slirp4netns already keeps the host's loopback out
 * (--disable-host-loopback). Each driver closes these off in its own way (routes, nftables).
 */
import { networkInterfaces } from "node:os";

export const ALWAYS_DENIED = ["169.254.0.0/16", "100.100.100.200/32"];

/** The destinations to deny, with the host's current IPv4 addresses. */
export function deniedDestinations(): string[] {
  const own = Object.values(networkInterfaces())
    .flat()
    .filter((address) => address !== undefined && address.family === "IPv4" && !address.internal)
    .map((address) => `${address?.address}/32`);
  return [...new Set([...ALWAYS_DENIED, ...own])];
}
