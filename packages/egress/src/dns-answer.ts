/**
 * Answers one DNS query of an allow-list sandbox. Only a name the rules allow (and do not
 * deny) is ever looked up, so the server's resolver cannot carry data out for a sandbox; the
 * A answers are filtered by the address checks and pinned; AAAA gets an empty answer (IPv6
 * never leaves an allow-list sandbox); other types get an empty answer without a lookup.
 */
import dnsPacket from "dns-packet";
import { addressVerdict } from "./address-policy.js";
import { type Cidr, parseAddress } from "./addresses.js";
import type { EgressReason } from "./audit.js";
import { displayName, normalizeName } from "./names.js";
import type { EgressPins } from "./pins.js";
import type { ResolveIpv4 } from "./resolve.js";
import type { CompiledEgressRules } from "./rules.js";

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface DnsAnswerContext {
  rules: CompiledEgressRules;
  resolve: ResolveIpv4;
  pins: EgressPins;
  neverReachable: readonly Cidr[];
  /** The TTL of the answers we give, at most: short, so a sandbox keeps asking us. */
  answerTtlSeconds: number;
  /** How long a pin lives, at least and at most (seconds), whatever the upstream TTL. */
  pinTtlSeconds: { min: number; max: number };
}

export interface DnsAnswer {
  /** The response to send, or undefined when the query was too broken to answer at all. */
  response: Buffer | undefined;
  host: string | null;
  decision: "allowed" | "denied";
  reason: EgressReason;
}

export async function answerDnsQuery(query: Buffer, context: DnsAnswerContext): Promise<DnsAnswer> {
  if (query.length < 12)
    return { response: undefined, host: null, decision: "denied", reason: "dns_malformed" };
  const id = query.readUInt16BE(0);
  const flags = query.readUInt16BE(2);
  const recursionDesired = flags & dnsPacket.RECURSION_DESIRED;
  const opcode = (flags >> 11) & 0xf;
  const reply = (rcode: number, question?: dnsPacket.Question, answers: dnsPacket.Answer[] = []): Buffer =>
    dnsPacket.encode({
      type: "response",
      id,
      flags: recursionDesired | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions: question === undefined ? [] : [question],
      answers,
    });
  if ((flags & 0x8000) !== 0) {
    // A response sent as a query: nothing to answer.
    return { response: undefined, host: null, decision: "denied", reason: "dns_malformed" };
  }
  if (opcode !== 0)
    return { response: reply(RCODE.NOTIMP), host: null, decision: "denied", reason: "dns_malformed" };
  let question: dnsPacket.Question | undefined;
  try {
    const decoded = dnsPacket.decode(query);
    if (decoded.questions?.length === 1) question = decoded.questions[0];
  } catch {
    question = undefined;
  }
  if (question === undefined) {
    return { response: reply(RCODE.FORMERR), host: null, decision: "denied", reason: "dns_malformed" };
  }
  const name = normalizeName(question.name);
  const host = name ?? displayName(question.name);
  const verdict = name === undefined ? "not_listed" : context.rules.nameVerdict(name);
  if (name === undefined || verdict !== "allowed" || question.class !== "IN") {
    return { response: reply(RCODE.REFUSED, question), host, decision: "denied", reason: "dns_refused" };
  }
  if (question.type !== "A") {
    return {
      response: reply(RCODE.NOERROR, question),
      host,
      decision: "allowed",
      reason: "dns_empty_answer",
    };
  }
  const outcome = await context.resolve(name);
  if (outcome.kind === "nxdomain") {
    return { response: reply(RCODE.NXDOMAIN, question), host, decision: "allowed", reason: "dns_nxdomain" };
  }
  if (outcome.kind === "nodata") {
    return {
      response: reply(RCODE.NOERROR, question),
      host,
      decision: "allowed",
      reason: "dns_empty_answer",
    };
  }
  if (outcome.kind === "failed") {
    return {
      response: reply(RCODE.SERVFAIL, question),
      host,
      decision: "allowed",
      reason: "upstream_unreachable",
    };
  }
  const now = Date.now();
  const answers: dnsPacket.Answer[] = [];
  for (const answer of outcome.answers) {
    const address = parseAddress(answer.address);
    if (address === undefined || address.kind() !== "ipv4") continue;
    if (addressVerdict(address, context.rules, context.neverReachable) !== "ok") continue;
    const text = address.toString();
    const pinSeconds = Math.min(Math.max(answer.ttl, context.pinTtlSeconds.min), context.pinTtlSeconds.max);
    context.pins.pin(text, name, now + pinSeconds * 1000);
    answers.push({
      type: "A",
      class: "IN",
      name: question.name,
      ttl: Math.max(0, Math.min(answer.ttl, context.answerTtlSeconds)),
      data: text,
    });
  }
  if (answers.length === 0) {
    return {
      response: reply(RCODE.REFUSED, question),
      host,
      decision: "denied",
      reason: "dns_private_answer",
    };
  }
  return {
    response: reply(RCODE.NOERROR, question, answers),
    host,
    decision: "allowed",
    reason: "allowed_name",
  };
}
