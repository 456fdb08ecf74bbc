/**
 * The policy engine for the intercepted connections of allow-list sandboxes. The server hands
 * it each connection (`AgentConnection.interceptEgress`); the guard decides, answers DNS
 * itself, connects allowed TCP to the checked address and splices the bytes, and reports one
 * audit event per connection or DNS query. The semantics are in README.md.
 */
import type { Duplex } from "node:stream";
import { type EgressDestination, PolydevError } from "@polydev/core";
import { addressVerdict } from "./address-policy.js";
import { type Cidr, type IpAddress, parseAddress, parseCidr } from "./addresses.js";
import type { EgressAuditEvent, EgressReason } from "./audit.js";
import { ByteReader } from "./byte-reader.js";
import { answerDnsQuery, type DnsAnswerContext } from "./dns-answer.js";
import { readHttpRequestHead } from "./http-request-head.js";
import { displayName, normalizeName } from "./names.js";
import { EgressPins } from "./pins.js";
import { type ResolveIpv4, systemResolveIpv4 } from "./resolve.js";
import type { CompiledEgressRules } from "./rules.js";
import { readClientHello } from "./tls-client-hello.js";
import { connectUpstream, parseUpstreamProxy, type UpstreamProxy } from "./upstream.js";

export interface EgressGuardOptions {
  /** DNS servers for the guard's own lookups (`1.2.3.4`, `1.2.3.4:5353`, `[::1]:53`). Default: the system's. */
  dnsServers?: string[];
  /** The operator's proxy (`http://host:port`); allowed connections then go through `CONNECT`. Default: none. */
  upstreamProxy?: string;
  /** More never-reachable addresses or CIDRs: the host's own addresses (the server passes them). */
  neverReachable?: string[];
  /** How long to wait for the first bytes (SNI or Host) of a TCP connection. Default 1000. */
  peekTimeoutMs?: number;
  /** How long connecting to an allowed destination (or the proxy) may take. Default 10000. */
  connectTimeoutMs?: number;
  /** How long one lookup of the guard's resolver may take (per try, 2 tries). Default 5000. */
  resolveTimeoutMs?: number;
  /** Address-name pins kept per sandbox; the oldest go first. Default 4096. */
  maxPinsPerSandbox?: number;
  /** Connections (TCP and DNS) a sandbox may have open at once; more are refused. Default 64. */
  maxConnectionsPerSandbox?: number;
}

/** What the guard needs of a sandbox; `rules()` is read per connection. */
export interface EgressSandbox {
  id: string;
  rules(): CompiledEgressRules;
  onAudit(event: EgressAuditEvent): void;
}

/** The first bytes of a TLS or HTTP connection: at most this many are held before deciding. */
export const MAX_PEEK_BYTES = 16 * 1024;
/** DNS queries larger than this are not read (real queries are well under 512 bytes). */
export const MAX_DNS_QUERY_BYTES = 4096;
/** DNS messages answered on one TCP connection to port 53 before it is closed. */
export const MAX_DNS_MESSAGES_PER_CONNECTION = 64;
const DNS_IDLE_TIMEOUT_MS = 10_000;
/** A refused connection is torn down this long after our last bytes, if the sandbox has not closed it. */
const REFUSAL_LINGER_MS = 5_000;
/** Answers over UDP must fit 512 bytes unless the query offered more (EDNS); we stay under it. */
const MAX_UDP_ANSWER_BYTES = 512;

interface SandboxState {
  pins: EgressPins;
  active: number;
  sockets: Set<Duplex>;
}

type Decision =
  | { allowed: true; reason: EgressReason; name: string | undefined }
  | { allowed: false; reason: EgressReason };

export class EgressGuard {
  private readonly sandboxes = new Map<string, SandboxState>();
  private readonly resolve: ResolveIpv4;
  private readonly proxy: UpstreamProxy | undefined;
  private readonly neverReachable: readonly Cidr[];
  private readonly peekTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxPins: number;
  private readonly maxConnections: number;

  constructor(options: EgressGuardOptions = {}) {
    this.resolve = systemResolveIpv4(options.dnsServers, options.resolveTimeoutMs ?? 5000);
    this.proxy = options.upstreamProxy === undefined ? undefined : parseUpstreamProxy(options.upstreamProxy);
    this.neverReachable = (options.neverReachable ?? []).map((entry) => {
      const cidr = parseCidr(entry);
      if (cidr === undefined) {
        throw new PolydevError(
          "invalid_request",
          `never-reachable entry ${JSON.stringify(entry)} is not an IP address or CIDR`,
        );
      }
      return cidr;
    });
    this.peekTimeoutMs = options.peekTimeoutMs ?? 1000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.maxPins = options.maxPinsPerSandbox ?? 4096;
    this.maxConnections = options.maxConnectionsPerSandbox ?? 64;
  }

  /** Decides and serves one intercepted connection. Never throws; ends `socket` when refused. */
  handle(socket: Duplex, destination: EgressDestination, sandbox: EgressSandbox): void {
    // A sandbox-side stream error ends this connection, never the process.
    socket.on("error", () => socket.destroy());
    const state = this.stateOf(sandbox.id);
    const started = Date.now();
    if (state.active >= this.maxConnections) {
      report(sandbox, {
        kind: destination.kind,
        host: null,
        destination,
        decision: "denied",
        reason: "too_many_connections",
        started,
      });
      socket.destroy();
      return;
    }
    state.active += 1;
    state.sockets.add(socket);
    const release = (): void => {
      state.active -= 1;
      state.sockets.delete(socket);
    };
    let work: Promise<void>;
    try {
      work =
        destination.kind === "dns"
          ? this.serveDns(socket, destination, sandbox, state, 1)
          : destination.port === 53
            ? this.serveDns(socket, destination, sandbox, state, MAX_DNS_MESSAGES_PER_CONNECTION)
            : this.serveTcp(socket, destination, sandbox, state, started);
    } catch (error) {
      work = Promise.reject(error);
    }
    work.then(
      () => release(),
      () => {
        socket.destroy();
        release();
      },
    );
  }

  /** Drops what the guard keeps for a sandbox (pins) and ends its open connections. */
  forget(sandboxId: string): void {
    const state = this.sandboxes.get(sandboxId);
    if (state === undefined) return;
    this.sandboxes.delete(sandboxId);
    for (const socket of state.sockets) socket.destroy();
  }

  private stateOf(sandboxId: string): SandboxState {
    let state = this.sandboxes.get(sandboxId);
    if (state === undefined) {
      state = { pins: new EgressPins(this.maxPins), active: 0, sockets: new Set() };
      this.sandboxes.set(sandboxId, state);
    }
    return state;
  }

  private async serveDns(
    socket: Duplex,
    destination: EgressDestination,
    sandbox: EgressSandbox,
    state: SandboxState,
    maxMessages: number,
  ): Promise<void> {
    const reader = new ByteReader(socket, 2 + MAX_DNS_QUERY_BYTES);
    try {
      for (let message = 0; message < maxMessages; message += 1) {
        const started = Date.now();
        const deadline = started + DNS_IDLE_TIMEOUT_MS;
        const lengthBytes = await reader.take(2, deadline);
        if (typeof lengthBytes === "string") return;
        const length = lengthBytes.readUInt16BE(0);
        const query =
          length === 0 || length > MAX_DNS_QUERY_BYTES ? "overflow" : await reader.take(length, deadline);
        if (typeof query === "string") {
          report(sandbox, {
            kind: "dns",
            host: null,
            destination,
            decision: "denied",
            reason: "dns_malformed",
            started,
          });
          return;
        }
        const context: DnsAnswerContext = {
          rules: sandbox.rules(),
          resolve: this.resolve,
          pins: state.pins,
          neverReachable: this.neverReachable,
          answerTtlSeconds: 30,
          pinTtlSeconds: { min: 60, max: 600 },
        };
        const answer = await answerDnsQuery(query, context);
        const response =
          answer.response === undefined || destination.kind !== "dns"
            ? answer.response
            : fitUdp(answer.response, query);
        report(sandbox, {
          kind: "dns",
          host: answer.host,
          destination,
          decision: answer.decision,
          reason: answer.reason,
          started,
          bytesOut: query.length,
          bytesIn: response?.length ?? 0,
        });
        if (response === undefined) return;
        const frame = Buffer.alloc(2 + response.length);
        frame.writeUInt16BE(response.length, 0);
        response.copy(frame, 2);
        socket.write(frame);
      }
    } finally {
      reader.detach();
      socket.resume();
      socket.end();
    }
    await lingerThenDestroy(socket);
  }

  private async serveTcp(
    socket: Duplex,
    destination: EgressDestination,
    sandbox: EgressSandbox,
    state: SandboxState,
    started: number,
  ): Promise<void> {
    const reader = new ByteReader(socket, MAX_PEEK_BYTES);
    const peeked = await peek(reader, started + this.peekTimeoutMs);
    const rawName = peeked.name;
    const host = rawName === undefined ? null : (normalizeName(rawName) ?? displayName(rawName));
    const address = parseAddress(destination.address);
    let decision: Decision;
    try {
      decision =
        address === undefined
          ? { allowed: false, reason: "not_listed" }
          : await this.decideTcp(sandbox.rules(), state, address, peeked);
    } catch {
      decision = { allowed: false, reason: "not_listed" };
    }
    const sandboxEnded = reader.done;
    const firstBytes = reader.detach();
    if (!decision.allowed) {
      report(sandbox, {
        kind: "tcp",
        host,
        destination,
        decision: "denied",
        reason: decision.reason,
        started,
      });
      await refuse(
        socket,
        peeked.protocol === "http" ? forbiddenResponse(host ?? destination.address) : undefined,
      );
      return;
    }
    let upstream: Awaited<ReturnType<typeof connectUpstream>>;
    try {
      upstream = await connectUpstream({
        address: address?.toString() ?? destination.address,
        name: decision.name,
        port: destination.port,
        proxy: this.proxy,
        timeoutMs: this.connectTimeoutMs,
      });
    } catch {
      report(sandbox, {
        kind: "tcp",
        host,
        destination,
        decision: "allowed",
        reason: "upstream_unreachable",
        started,
      });
      await refuse(socket, undefined);
      return;
    }
    await splice(socket, upstream.socket, firstBytes, upstream.early, sandboxEnded).then((bytes) =>
      report(sandbox, {
        kind: "tcp",
        host,
        destination,
        decision: "allowed",
        reason: decision.reason,
        started,
        ...bytes,
      }),
    );
  }

  private async decideTcp(
    rules: CompiledEgressRules,
    state: SandboxState,
    address: IpAddress,
    peeked: Peeked,
  ): Promise<Decision> {
    const mismatch: EgressReason = peeked.protocol === "tls" ? "sni_mismatch" : "host_mismatch";
    if (peeked.conflicting) return { allowed: false, reason: "host_mismatch" };
    const name = peeked.name === undefined ? undefined : normalizeName(peeked.name);
    const verdict = name === undefined ? undefined : rules.nameVerdict(name);
    if (verdict === "denied") return { allowed: false, reason: "denied_name" };
    const addressText = address.toString();
    if (name !== undefined && verdict === "allowed") {
      const pinned = state.pins.namesFor(addressText, Date.now());
      if (pinned.size > 0) {
        if (!pinned.has(name)) return { allowed: false, reason: mismatch };
      } else {
        const outcome = await this.resolve(name);
        const belongs =
          outcome.kind === "answers" &&
          outcome.answers.some((answer) => parseAddress(answer.address)?.toString() === addressText);
        if (!belongs) return { allowed: false, reason: mismatch };
      }
      const checked = addressVerdict(address, rules, this.neverReachable);
      if (checked !== "ok") return { allowed: false, reason: checked };
      return { allowed: true, reason: "allowed_name", name };
    }
    // No usable name, or a name the lists do not mention: the address decides.
    const checked = addressVerdict(address, rules, this.neverReachable);
    if (checked !== "ok") return { allowed: false, reason: checked };
    if (rules.addressAllowed(address)) return { allowed: true, reason: "allowed_cidr", name: undefined };
    if (peeked.name === undefined) {
      const pinned = state.pins.namesFor(addressText, Date.now());
      const stillAllowed = [...pinned].find((pinnedName) => rules.nameVerdict(pinnedName) === "allowed");
      if (stillAllowed !== undefined) return { allowed: true, reason: "allowed_pinned", name: stillAllowed };
    }
    return { allowed: false, reason: "not_listed" };
  }
}

interface Peeked {
  protocol: "tls" | "http" | "other";
  /** The SNI or Host as sent, undefined when the bytes carry none. */
  name: string | undefined;
  /** An HTTP request naming several different hosts. */
  conflicting: boolean;
}

/** Reads until the first bytes name a destination, prove they will not, or the window closes. */
async function peek(reader: ByteReader, deadlineMs: number): Promise<Peeked> {
  for (;;) {
    const bytes = reader.bytes;
    const tls = readClientHello(bytes);
    if (tls.kind === "client_hello") return { protocol: "tls", name: tls.serverName, conflicting: false };
    const http = readHttpRequestHead(bytes);
    if (http.kind === "http_request")
      return { protocol: "http", name: http.host, conflicting: http.conflicting };
    if (tls.kind === "not_tls" && http.kind === "not_http")
      return { protocol: "other", name: undefined, conflicting: false };
    const outcome = await reader.more(deadlineMs);
    if (outcome !== "ok") {
      return {
        protocol: http.kind === "incomplete" && bytes.length > 0 ? "http" : "other",
        name: undefined,
        conflicting: false,
      };
    }
  }
}

function forbiddenResponse(host: string): Buffer {
  const body = `Polydev: this sandbox's egress policy refused the connection to ${host}.\n`;
  return Buffer.from(
    `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Ends a refused connection (after `response`, if any), discarding what the sandbox still
 * sends; settles once it closed, so it counts against the sandbox's open connections until then.
 */
function refuse(socket: Duplex, response: Buffer | undefined): Promise<void> {
  socket.resume();
  if (response === undefined) socket.end();
  else socket.end(response);
  return lingerThenDestroy(socket);
}

/** Destroys `socket` if it has not closed within the linger time; settles when it closed. */
function lingerThenDestroy(socket: Duplex): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
    timer.unref();
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Copies both ways (half-closes pass through) until both streams closed; resolves with the
 * byte counts. Never rejects. When the sandbox side goes away nothing can be delivered any
 * more, so the world side is torn down; when the world side goes away the sandbox side gets
 * what was already written, then its end.
 */
function splice(
  sandbox: Duplex,
  world: Duplex,
  firstBytes: Buffer,
  early: Buffer,
  sandboxEnded: boolean,
): Promise<{ bytesOut: number; bytesIn: number }> {
  return new Promise((resolve) => {
    let bytesOut = firstBytes.length;
    let bytesIn = early.length;
    let open = 2;
    const closed = (): void => {
      open -= 1;
      if (open === 0) resolve({ bytesOut, bytesIn });
    };
    world.on("error", () => world.destroy());
    world.once("close", () => {
      // Whatever the sandbox still sends has nowhere to go: read it away, or its end (and so its
      // close, which frees its connection slot) would wait for a reader that is gone.
      sandbox.unpipe(world);
      sandbox.resume();
      if (!sandbox.writableEnded) sandbox.end();
      void lingerThenDestroy(sandbox);
      closed();
    });
    const onSandboxClose = (): void => {
      world.destroy();
      closed();
    };
    if (sandbox.destroyed) onSandboxClose();
    else sandbox.once("close", onSandboxClose);
    sandbox.on("data", (chunk: Buffer) => {
      bytesOut += chunk.length;
    });
    world.on("data", (chunk: Buffer) => {
      bytesIn += chunk.length;
    });
    if (early.length > 0) sandbox.write(early);
    if (firstBytes.length > 0) world.write(firstBytes);
    if (sandboxEnded) world.end();
    else sandbox.pipe(world);
    world.pipe(sandbox);
  });
}

/** Trims an answer to what a UDP reply may carry, setting TC when answers had to go. */
function fitUdp(response: Buffer, query: Buffer): Buffer {
  if (response.length <= MAX_UDP_ANSWER_BYTES || query.length < 12) return response;
  // The client did not get everything: an empty truncated answer makes it retry over TCP.
  const header = Buffer.from(response.subarray(0, 12));
  header.writeUInt16BE(header.readUInt16BE(2) | 0x0200, 2);
  header.writeUInt16BE(0, 4);
  header.writeUInt16BE(0, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(0, 10);
  return header;
}

function report(
  sandbox: EgressSandbox,
  event: {
    kind: "tcp" | "dns";
    host: string | null;
    destination: EgressDestination;
    decision: "allowed" | "denied";
    reason: EgressReason;
    started: number;
    bytesOut?: number;
    bytesIn?: number;
  },
): void {
  try {
    sandbox.onAudit({
      at: new Date(event.started),
      kind: event.kind,
      host: event.host,
      address: event.destination.address,
      port: event.destination.port,
      decision: event.decision,
      reason: event.reason,
      bytesOut: event.bytesOut ?? 0,
      bytesIn: event.bytesIn ?? 0,
      durationMs: Date.now() - event.started,
    });
  } catch {
    // The server's audit sink failing must not take the connection (or the process) down.
  }
}
