/**
 * Egress rules: the entries of a sandbox's `allow` and `deny` lists, and their compiled form
 * the guard asks per connection. The entry syntax is part of the HTTP API (docs in README.md):
 * - `registry.example.com`: that name exactly (case-insensitive, a trailing dot ignored);
 * - `*.example.com`: any name strictly below example.com (not example.com itself);
 * - `*`: any name (it does not unlock private or never-reachable addresses);
 * - `10.20.1.5`, `10.20.0.0/16`, `2001:db8::/32`: addresses, for connections without a name
 *   and for the addresses a name resolves to.
 * `deny` wins over `allow`.
 */
import { PolydevError } from "@polydev/core";
import {
  type Cidr,
  cidrContains,
  cidrInside,
  type IpAddress,
  PRIVATE_RANGES,
  parseCidr,
} from "./addresses.js";
import { MAX_NAME_LENGTH, normalizeName } from "./names.js";

export const MAX_EGRESS_RULES = 256;
export const MAX_EGRESS_RULE_LENGTH = MAX_NAME_LENGTH;

export type EgressRule =
  | { kind: "name"; name: string }
  | { kind: "wildcard"; suffix: string }
  | { kind: "any-name" }
  | { kind: "cidr"; cidr: Cidr };

const ACCEPTED =
  "accepted: a host name (registry.example.com), a wildcard (*.example.com), * for any name, " +
  "an IPv4 or IPv6 address, or a CIDR (10.20.0.0/16, 2001:db8::/32)";

/** What is wrong with `entry` as a rule, or undefined when it is a valid one (for zod refine). */
export function egressRuleProblem(entry: string): string | undefined {
  const result = parse(entry);
  return typeof result === "string" ? result : undefined;
}

/** Parses one entry; `invalid_request` saying what is wrong and what is accepted otherwise. */
export function parseEgressRule(entry: string): EgressRule {
  const result = parse(entry);
  if (typeof result === "string") throw new PolydevError("invalid_request", result, { details: { entry } });
  return result;
}

function parse(entry: string): EgressRule | string {
  const shown = JSON.stringify(entry.length > 64 ? `${entry.slice(0, 64)}…` : entry);
  if (entry.length === 0) return `an egress rule is empty; ${ACCEPTED}`;
  if (entry.length > MAX_EGRESS_RULE_LENGTH) {
    return `egress rule ${shown} is longer than ${MAX_EGRESS_RULE_LENGTH} characters; ${ACCEPTED}`;
  }
  if (entry.trim() !== entry) return `egress rule ${shown} has surrounding spaces; ${ACCEPTED}`;
  if (entry === "*") return { kind: "any-name" };
  if (/^[0-9a-fA-F:.]+(?:\/\d+)?$/.test(entry) && (entry.includes(":") || entry.includes("/"))) {
    const cidr = parseCidr(entry);
    if (cidr === undefined) return `egress rule ${shown} is not a valid IP address or CIDR; ${ACCEPTED}`;
    return { kind: "cidr", cidr };
  }
  if (/^[\d.]+$/.test(entry)) {
    const cidr = parseCidr(entry);
    if (cidr === undefined) return `egress rule ${shown} is not a valid IPv4 address; ${ACCEPTED}`;
    return { kind: "cidr", cidr };
  }
  if (entry.startsWith("*.")) {
    const suffix = normalizeName(entry.slice(2));
    if (suffix === undefined) return `egress rule ${shown} is not a valid wildcard name; ${ACCEPTED}`;
    return { kind: "wildcard", suffix };
  }
  if (entry.includes("*")) {
    return `egress rule ${shown} has a * that is not a whole leading label (only "*.example.com" or "*"); ${ACCEPTED}`;
  }
  if (/[^\x20-\x7e]/.test(entry)) {
    return `egress rule ${shown} is not ASCII: write an internationalised name in its punycode form (xn--…); ${ACCEPTED}`;
  }
  const name = normalizeName(entry);
  if (name === undefined) {
    return `egress rule ${shown} is not a valid host name (labels of letters, digits, - or _, at most 63 characters each); ${ACCEPTED}`;
  }
  return { kind: "name", name };
}

export type NameVerdict = "allowed" | "denied" | "not_listed";

/** A validated policy, asked per connection. Immutable. */
export interface CompiledEgressRules {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  /** The verdict for a canonical name (see `normalizeName`). */
  nameVerdict(name: string): NameVerdict;
  /** Whether a deny CIDR covers the address. */
  addressDenied(address: IpAddress): boolean;
  /** Whether an allow CIDR covers the address (`*` is not a CIDR; `0.0.0.0/0` is). */
  addressAllowed(address: IpAddress): boolean;
  /**
   * Whether a private address is unlocked: an allow CIDR covers it and lies inside private
   * space itself (a listed 10.20.0.0/16 unlocks 10.20.x.x, 0.0.0.0/0 does not).
   */
  privateUnlocked(address: IpAddress): boolean;
}

class NameSet {
  readonly exact = new Set<string>();
  readonly suffixes: string[] = [];
  any = false;

  matches(name: string): boolean {
    if (this.any || this.exact.has(name)) return true;
    return this.suffixes.some((suffix) => name.endsWith(`.${suffix}`));
  }
}

function compileList(entries: readonly string[], which: "allow" | "deny"): { names: NameSet; cidrs: Cidr[] } {
  if (entries.length > MAX_EGRESS_RULES) {
    throw new PolydevError(
      "invalid_request",
      `the ${which} list has ${entries.length} entries; at most ${MAX_EGRESS_RULES} are accepted`,
    );
  }
  const names = new NameSet();
  const cidrs: Cidr[] = [];
  for (const entry of entries) {
    const rule = parseEgressRule(entry);
    if (rule.kind === "name") names.exact.add(rule.name);
    else if (rule.kind === "wildcard") names.suffixes.push(rule.suffix);
    else if (rule.kind === "any-name") names.any = true;
    else cidrs.push(rule.cidr);
  }
  return { names, cidrs };
}

/** Validates and compiles a policy; `invalid_request` naming the first bad entry. */
export function compileEgressRules(policy: {
  allow: readonly string[];
  deny: readonly string[];
}): CompiledEgressRules {
  const allow = compileList(policy.allow, "allow");
  const deny = compileList(policy.deny, "deny");
  const unlocking = allow.cidrs.filter((cidr) => PRIVATE_RANGES.some((range) => cidrInside(cidr, range)));
  return Object.freeze({
    allow: Object.freeze([...policy.allow]),
    deny: Object.freeze([...policy.deny]),
    nameVerdict(name: string): NameVerdict {
      if (deny.names.matches(name)) return "denied";
      return allow.names.matches(name) ? "allowed" : "not_listed";
    },
    addressDenied: (address: IpAddress) => deny.cidrs.some((cidr) => cidrContains(cidr, address)),
    addressAllowed: (address: IpAddress) => allow.cidrs.some((cidr) => cidrContains(cidr, address)),
    privateUnlocked: (address: IpAddress) => unlocking.some((cidr) => cidrContains(cidr, address)),
  });
}
