/**
 * Address classes the egress policy reasons about. Parsing goes through ipaddr.js (already in
 * the lockfile through Fastify), and every address is first "processed": an IPv4-mapped IPv6
 * address (::ffff:10.0.0.1) is the IPv4 address it carries, so it cannot dodge an IPv4 range.
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;
export type Cidr = readonly [IpAddress, number];

/** The address as text, or undefined when it is not a plain IPv4 or IPv6 address. */
export function parseAddress(text: string): IpAddress | undefined {
  // net.isIP first: ipaddr.js alone also accepts forms like "127.1" or "0x7f.0.0.1" that no
  // rule author means and that would make two spellings of one address.
  if (isIP(text) === 0) return undefined;
  try {
    return ipaddr.process(text);
  } catch {
    return undefined;
  }
}

/** "10.20.0.0/16" or "2001:db8::/32" (a bare address is a /32 or /128); undefined if invalid. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash === -1) {
    const address = parseAddress(text);
    if (address === undefined) return undefined;
    return [address, address.kind() === "ipv4" ? 32 : 128];
  }
  const addressText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  if (isIP(addressText) === 0) return undefined;
  let parsed: IpAddress;
  try {
    parsed = ipaddr.parse(addressText);
  } catch {
    return undefined;
  }
  let prefix = Number(prefixText);
  if (prefix > (parsed.kind() === "ipv4" ? 32 : 128)) return undefined;
  // An IPv4-mapped range is the IPv4 range it covers.
  if (parsed.kind() === "ipv6" && prefix >= 96) {
    const v6 = ipaddr.IPv6.parse(addressText);
    if (v6.isIPv4MappedAddress()) {
      parsed = v6.toIPv4Address();
      prefix -= 96;
    }
  }
  return [parsed, prefix];
}

export function cidrContains(cidr: Cidr, address: IpAddress): boolean {
  const [network, prefix] = cidr;
  return network.kind() === address.kind() && address.match(network, prefix);
}

/** Whether `inner` lies entirely inside `outer`. */
export function cidrInside(inner: Cidr, outer: Cidr): boolean {
  return inner[1] >= outer[1] && cidrContains(outer, inner[0]);
}

function cidrs(list: readonly string[]): readonly Cidr[] {
  return list.map((text) => {
    const cidr = parseCidr(text);
    if (cidr === undefined) throw new Error(`bad built-in range ${text}`);
    return cidr;
  });
}

/**
 * Never reachable from an allow-list sandbox, whatever its rules say: the host itself
 * (loopback, "this network"), link-local (cloud metadata at 169.254.169.254 included), the
 * Alibaba metadata address, multicast and reserved space; for IPv6 the same, plus the ranges
 * that embed an IPv4 address (NAT64, 6to4, Teredo) and so could smuggle a private one past
 * the IPv4 checks. The server adds the host's own addresses (`neverReachable`).
 */
export const NEVER_REACHABLE: readonly Cidr[] = cidrs([
  "0.0.0.0/8",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "100.100.100.200/32",
  "224.0.0.0/4",
  "240.0.0.0/4",
  "::/128",
  "::1/128",
  "fe80::/10",
  "ff00::/8",
  "64:ff9b::/96",
  "64:ff9b:1::/48",
  "2002::/16",
  "2001::/32",
]);

/**
 * Private space: reachable only when an allow CIDR inside one of these ranges covers the
 * address (so `*` or `0.0.0.0/0` never unlocks it). RFC 1918, carrier-grade NAT, the IETF
 * protocol block, the benchmarking range and IPv6 unique-local addresses.
 */
export const PRIVATE_RANGES: readonly Cidr[] = cidrs([
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "192.0.0.0/24",
  "198.18.0.0/15",
  "fc00::/7",
]);

export function inAnyCidr(list: readonly Cidr[], address: IpAddress): boolean {
  return list.some((cidr) => cidrContains(cidr, address));
}

export function cidrToString(cidr: Cidr): string {
  return `${cidr[0].toString()}/${cidr[1]}`;
}
