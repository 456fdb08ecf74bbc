/**
 * Relays one request to the node that owns its sandbox and its answer back, streaming both ways
 * (an upload, an exec's output, a run's SSE tail pass chunk by chunk, never held whole), and a
 * WebSocket upgrade as two raw sockets piped together once the owner accepted it. The client's
 * credentials are not sent on: the owner trusts the signed principal (internal-channel.ts).
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { Agent, request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Duplex } from "node:stream";
import { PolydevError } from "@polydev/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { INTERNAL_HEADER } from "./internal-channel.js";

/** Hop-by-hop headers (RFC 9110 §7.6.1) and what must not reach the owner from the client. */
const NOT_FORWARDED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
  "authorization",
  "cookie",
  INTERNAL_HEADER,
]);
const UPGRADE_HEADERS = new Set(["connection", "upgrade"]);
/** A refused upgrade's answer is small JSON; past this it is cut (the socket closes after it). */
const MAX_REFUSAL_BYTES = 64 * 1024;

const keepAlive = new Agent({ keepAlive: true, maxSockets: 256 });

export interface ForwardTarget {
  node: string;
  url: URL;
  /** The signed internal header for this request. */
  signature: string;
}

export function forwardedHeaders(
  request: FastifyRequest,
  target: ForwardTarget,
  options: { upgrade: boolean; contentLength?: number | undefined },
): OutgoingHttpHeaders {
  const named = new Set(
    String(request.headers.connection ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== "" && h !== "upgrade"),
  );
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || named.has(name)) continue;
    if (NOT_FORWARDED.has(name) && !(options.upgrade && UPGRADE_HEADERS.has(name))) continue;
    headers[name] = value;
  }
  if (options.contentLength !== undefined) headers["content-length"] = options.contentLength;
  headers.host = target.url.host;
  headers[INTERNAL_HEADER] = target.signature;
  headers["x-request-id"] = request.id;
  headers["x-forwarded-for"] = request.ip;
  return headers;
}

function withoutHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const kept: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!NOT_FORWARDED.has(name) || name === "authorization" || name === "cookie") kept[name] = value;
  }
  return kept;
}

function unavailable(target: ForwardTarget, error: Error): PolydevError {
  return new PolydevError(
    "node_unavailable",
    `the node ${target.node} that hosts this sandbox did not answer (${error.message}); try again shortly`,
  );
}

function send(target: URL) {
  return target.protocol === "https:" ? httpsRequest : httpRequest;
}

/** Forwards an HTTP request; `body` is the already-parsed body re-encoded, or the raw stream. */
export function proxyHttp(
  request: FastifyRequest,
  reply: FastifyReply,
  target: ForwardTarget,
  body: Buffer | "stream",
  log: Logger,
): void {
  reply.hijack();
  const res = reply.raw;
  const headers = forwardedHeaders(request, target, {
    upgrade: false,
    contentLength: body === "stream" ? undefined : body.length,
  });
  const upstream = send(target.url)(target.url, {
    method: request.method,
    headers,
    ...(target.url.protocol === "http:" ? { agent: keepAlive } : {}),
  });
  upstream.on("response", (answer) => {
    res.writeHead(answer.statusCode ?? 502, withoutHopByHop(answer.headers));
    // An event stream's first bytes may be a while coming: the client learns the status now.
    res.flushHeaders();
    answer.pipe(res);
    answer.on("error", () => res.destroy());
    answer.on("aborted", () => res.destroy());
  });
  upstream.on("error", (error) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    log.warn({ node: target.node, err: error }, "forwarding a request to its node failed");
    const failure = unavailable(target, error);
    res.writeHead(failure.status, { "content-type": "application/json; charset=utf-8", connection: "close" });
    res.end(JSON.stringify(failure.toJSON()));
    request.raw.resume();
  });
  // The client went away (or the answer is done): the owner's side ends too.
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  if (body === "stream") request.raw.pipe(upstream);
  else upstream.end(body);
}

/** What @fastify/websocket kept of the upgrade: bytes the client sent after its headers. */
function upgradeHead(raw: IncomingMessage): Buffer {
  for (const symbol of Object.getOwnPropertySymbols(raw)) {
    if (symbol.description !== "ws-head") continue;
    const head: unknown = Reflect.get(raw, symbol);
    if (Buffer.isBuffer(head)) return head;
  }
  return Buffer.alloc(0);
}

function rawResponseHead(statusCode: number, statusMessage: string, rawHeaders: string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage}\r\n`;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/**
 * Forwards a WebSocket upgrade: once the owner answers 101 the two sockets are piped together and
 * frames pass untouched; a refusal (404, 409, 401) is relayed as it came and the socket closed.
 * Returns the client's socket so the caller can close it when the server stops.
 */
export function proxyUpgrade(
  request: FastifyRequest,
  reply: FastifyReply,
  target: ForwardTarget,
  log: Logger,
): Duplex {
  reply.hijack();
  const socket: Duplex = request.raw.socket;
  const head = upgradeHead(request.raw);
  const upstream = send(target.url)(target.url, {
    method: "GET",
    headers: forwardedHeaders(request, target, { upgrade: true }),
  });
  const closeBoth = (other?: Duplex): void => {
    socket.destroy();
    other?.destroy();
  };
  socket.on("error", () => upstream.destroy());
  socket.on("close", () => upstream.destroy());
  upstream.on("upgrade", (answer, ownerSocket, ownerHead) => {
    socket.write(rawResponseHead(101, answer.statusMessage ?? "Switching Protocols", answer.rawHeaders));
    if (ownerHead.length > 0) socket.write(ownerHead);
    if (head.length > 0) ownerSocket.write(head);
    ownerSocket.pipe(socket);
    socket.pipe(ownerSocket);
    ownerSocket.on("error", () => closeBoth(ownerSocket));
    ownerSocket.on("close", () => closeBoth(ownerSocket));
    socket.on("error", () => closeBoth(ownerSocket));
    socket.on("close", () => closeBoth(ownerSocket));
  });
  upstream.on("response", (answer) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    answer.on("data", (chunk: Buffer) => {
      if (bytes >= MAX_REFUSAL_BYTES) return;
      chunks.push(chunk.subarray(0, MAX_REFUSAL_BYTES - bytes));
      bytes += chunk.length;
    });
    answer.on("end", () => {
      const body = Buffer.concat(chunks);
      const headers = answer.rawHeaders.filter((_, i, all) => {
        const name = (i % 2 === 0 ? all[i] : all[i - 1])?.toLowerCase() ?? "";
        return !["content-length", "transfer-encoding", "connection", "keep-alive"].includes(name);
      });
      headers.push("content-length", String(body.length), "connection", "close");
      socket.end(
        Buffer.concat([
          Buffer.from(rawResponseHead(answer.statusCode ?? 502, answer.statusMessage ?? "", headers)),
          body,
        ]),
      );
    });
    answer.on("error", () => socket.destroy());
  });
  upstream.on("error", (error) => {
    if (socket.destroyed) return;
    log.warn({ node: target.node, err: error }, "forwarding a terminal to its node failed");
    const failure = JSON.stringify(unavailable(target, error).toJSON());
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(failure)}\r\nconnection: close\r\n\r\n${failure}`,
    );
  });
  upstream.end();
  return socket;
}
