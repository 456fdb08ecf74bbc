/**
 * The server's own lookups for allowed names (node:dns `Resolver`, i.e. c-ares talking to
 * `dnsServers` or the system's resolv.conf servers; /etc/hosts is not consulted, on purpose:
 * the host's own name table is none of a sandbox's business).
 */
import { Resolver } from "node:dns";

export type ResolveOutcome =
  | { kind: "answers"; answers: { address: string; ttl: number }[] }
  | { kind: "nxdomain" }
  | { kind: "nodata" }
  | { kind: "failed" };

export type ResolveIpv4 = (name: string) => Promise<ResolveOutcome>;

export function systemResolveIpv4(dnsServers: readonly string[] | undefined, timeoutMs: number): ResolveIpv4 {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (dnsServers !== undefined && dnsServers.length > 0) resolver.setServers([...dnsServers]);
  return (name) =>
    new Promise<ResolveOutcome>((resolve) => {
      resolver.resolve4(name, { ttl: true }, (error, answers) => {
        if (error === null) return resolve({ kind: "answers", answers });
        if (error.code === "ENOTFOUND") return resolve({ kind: "nxdomain" });
        if (error.code === "ENODATA") return resolve({ kind: "nodata" });
        resolve({ kind: "failed" });
      });
    });
}
