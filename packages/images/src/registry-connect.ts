/**
 * Where a pull may connect. A registry is named by the user, so without a check a pull is a
 * request forgery: `127.0.0.1:6379/x`, the cloud metadata service, a LAN admin page, or a
 * registry that answers 307 to one of those. Every connection a pull makes (registry, token
 * realm, redirect targets) goes through `registryDispatcher`, which resolves the host once,
 * refuses it when any of its addresses is loopback, link-local, metadata, private, reserved or
 * one of this host's own, and then connects to exactly the address it checked (no second lookup a
 * DNS answer could change in between). Hosts an operator listed are let through unchecked.
 *
 * The ranges are the egress policy's (packages/egress), so the two never disagree.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { PolydevError } from "@polydev/core";
import { inAnyCidr, NEVER_REACHABLE, PRIVATE_RANGES, parseAddress } from "@polydev/egress";
import { Agent, buildConnector, type Dispatcher } from "undici";

/** Why a pull may not connect to `address`, or undefined when it may. */
export function refusedAddressReason(address: string): string | undefined {
  const parsed = parseAddress(address);
  if (parsed === undefined) return "it is not an IP address";
  if (inAnyCidr(NEVER_REACHABLE, parsed)) return "it is a loopback, link-local, metadata or reserved address";
  if (inAnyCidr(PRIVATE_RANGES, parsed)) return "it is a private address";
  const own = Object.values(networkInterfaces())
    .flat()
    .flatMap((entry) => (entry === undefined ? [] : [parseAddress(entry.address.split("%")[0] ?? "")]));
  if (
    own.some(
      (mine) => mine !== undefined && mine.kind() === parsed.kind() && mine.toString() === parsed.toString(),
    )
  )
    return "it is one of this host's own addresses";
  return undefined;
}

/** `host` and `host:port` as a registry reference spells them (IPv6 in brackets). */
function spellings(hostname: string, port: string, protocol: string): string[] {
  const bare = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const host = isIP(bare) === 6 ? `[${bare}]` : bare;
  const effectivePort = port !== "" ? port : protocol === "https:" ? "443" : "80";
  return [host, `${host}:${effectivePort}`];
}

/** The address to connect to for `hostname`, or a `registry_refused` error naming why not. */
async function checkedAddress(hostname: string): Promise<string> {
  const bare = hostname.replace(/^\[(.*)\]$/, "$1");
  const addresses =
    isIP(bare) !== 0 ? [bare] : (await lookup(bare, { all: true, verbatim: true })).map((a) => a.address);
  if (addresses.length === 0) throw new PolydevError("upstream_unreachable", `${hostname} has no address`);
  // Every address must pass: a name that also resolves to a private one is refused as a whole.
  for (const address of addresses) {
    const reason = refusedAddressReason(address);
    if (reason !== undefined) {
      throw new PolydevError(
        "registry_refused",
        `pulls may not connect to ${hostname} (${address}): ${reason}; an operator can allow a registry on a private network with images.privateRegistries (POLYDEV_PRIVATE_REGISTRIES)`,
        { details: { host: hostname } },
      );
    }
  }
  return addresses[0] ?? bare;
}

/**
 * An undici dispatcher whose every connection is checked (see the file comment). `allowedHosts`
 * are `host` or `host:port` names that may be anywhere, private networks and loopback included.
 */
export function registryDispatcher(allowedHosts: readonly string[]): Dispatcher {
  const allowed = new Set(allowedHosts.map((host) => host.toLowerCase()));
  const connect = buildConnector({});
  return new Agent({
    connect: (options, callback) => {
      if (spellings(options.hostname, options.port, options.protocol).some((name) => allowed.has(name))) {
        connect(options, callback);
        return;
      }
      checkedAddress(options.hostname).then(
        (address) => {
          const bare = options.hostname.replace(/^\[(.*)\]$/, "$1");
          // TLS still checks the certificate against the name asked for, not the address.
          const servername = options.servername ?? (isIP(bare) === 0 ? bare : undefined);
          connect(
            { ...options, hostname: address, ...(servername === undefined ? {} : { servername }) },
            callback,
          );
        },
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), null),
      );
    },
  });
}
