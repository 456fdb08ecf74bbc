/** What the guard records per connection and per DNS query (the API's audit log entries). */

/**
 * Stable words (the HTTP API exposes them):
 * - allowed_name: a listed name, its address agreeing (TCP), or answered (DNS);
 * - allowed_cidr: no usable name, the address is inside an allow CIDR;
 * - allowed_pinned: no name in the bytes, the address was answered for an allowed name;
 * - denied_name: the name matches a deny rule;
 * - not_listed: neither the name nor the address is allowed;
 * - denied_address: the address is inside a deny CIDR;
 * - private_address: a private address no allow CIDR inside private space covers;
 * - never_reachable: loopback, link-local/metadata, multicast, reserved, or the host's own;
 * - sni_mismatch / host_mismatch: the TLS SNI / HTTP Host does not belong to the address
 *   (pinned to other names, or not among the name's addresses), or the HTTP request names
 *   several hosts;
 * - too_many_connections: the sandbox has too many connections open at once;
 * - upstream_unreachable: allowed, but the destination (or the upstream proxy, or for DNS
 *   the server's resolver) could not be reached;
 * - dns_refused: a query for a denied or unlisted name (answered REFUSED, nothing looked up);
 * - dns_private_answer: every address of an allowed name was dropped by the address checks;
 * - dns_empty_answer: an allowed name, a query type we answer empty (AAAA, others) or no
 *   A records;
 * - dns_nxdomain: an allowed name that does not exist;
 * - dns_malformed: a query we could not read (or too large, or not a query).
 */
export type EgressReason =
  | "allowed_name"
  | "allowed_cidr"
  | "allowed_pinned"
  | "denied_name"
  | "not_listed"
  | "denied_address"
  | "private_address"
  | "never_reachable"
  | "sni_mismatch"
  | "host_mismatch"
  | "too_many_connections"
  | "upstream_unreachable"
  | "dns_refused"
  | "dns_private_answer"
  | "dns_empty_answer"
  | "dns_nxdomain"
  | "dns_malformed";

export interface EgressAuditEvent {
  at: Date;
  kind: "tcp" | "dns";
  /** The name the connection or query carried (SNI, Host, question), null when none. */
  host: string | null;
  /** Where the sandbox process connected or sent to. */
  address: string;
  port: number;
  decision: "allowed" | "denied";
  reason: string;
  /** Bytes from the sandbox to the world (0 for a refused connection). */
  bytesOut: number;
  /** Bytes from the world to the sandbox. */
  bytesIn: number;
  durationMs: number;
}
