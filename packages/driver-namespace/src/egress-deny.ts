/**
 * What a sandbox with `network: "egress"` must never reach, whatever the host's routes say:
 * link-local addresses (cloud metadata services hand out the machine's credentials at
 * 169.254.169.254; Alibaba's sits at 100.100.100.200) and the host's own addresses (services the
 * host binds to every interface). slirp4netns already keeps the host's loopback out
 * (--disable-host-loopback). The exec server binary's --deny-routes adds "prohibit" routes for
 * these to the sandbox's network namespace, from the host, before anything in it runs.
 */
import { networkInterfaces } from "node:os";
import { runNetworkHelper } from "./network-helper.js";

const ALWAYS_DENIED = ["169.254.0.0/16", "100.100.100.200/32"];

/** The destinations to deny, with the host's current IPv4 addresses. */
export function deniedDestinations(): string[] {
  const own = Object.values(networkInterfaces())
    .flat()
    .filter((address) => address !== undefined && address.family === "IPv4" && !address.internal)
    .map((address) => `${address?.address}/32`);
  return [...new Set([...ALWAYS_DENIED, ...own])];
}

export function denyRoutes(binary: string, initPid: number, destinations: string[]): Promise<void> {
  return runNetworkHelper(
    binary,
    ["--deny-routes", `/proc/${initPid}/ns/net`, ...destinations],
    "could not close off denied destinations",
  );
}
