/**
 * The HTTP/1.1 relay of preview URLs: one request (or one WebSocket) from a client to a port on a
 * sandbox's loopback, over a `forward.in` connection of its agent channel (kept alive and reused
 * for plain requests, one of its own for a WebSocket). Node's own HTTP
 * client speaks to the sandbox (`createConnection` hands it the forwarded stream), so requests
 * are framed by Node's parser on both sides: a request Node's server refused to parse never gets
 * here, and what reaches the sandbox is a request we wrote, never bytes the client chose.
 * (A proxy library would add a second layer over the same `http.request` for no gain here: the
 * work is in choosing headers and answering errors, not in piping.)
 *
 * Bodies stream both ways with back-pressure; nothing is buffered. Headers are rebuilt from a
 * list: hop-by-hop headers and Polydev's own credentials (Authorization, the dashboard and
 * preview cookies, the CSRF header) never reach the sandbox, and what comes back is filtered too.
 */
import type {
  Agent,
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import { request as httpRequest } from "node:http";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PolydevError } from "@polydev/core";

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus proxies' own. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/** Polydev's own request headers: credentials for Polydev, never for the sandbox. */
const POLYDEV_REQUEST_HEADERS = new Set(["authorization", "x-csrf-token", "host"]);

/** Cookies Polydev sets; a browser sends them to every port of the host, so they are dropped. */
export const isPolydevCookie = (name: string): boolean => name.toLowerCase().startsWith("polydev_");

export interface RelayTarget {
  /** The sandbox port, for the Host header and messages. */
  port: number;
  /** A fresh connection to the port (`forward.in`); rejects `port_unreachable` when nothing listens. */
  connect(signal: AbortSignal): Promise<Duplex>;
  /**
   * Keep-alive connections to the port for plain requests (each new `forward.in` costs a
   * channel and, on some drivers, a helper process in the sandbox). Absent: one per request.
   */
  agent?: Agent | undefined;
}

const RETRYABLE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export interface RelayOptions {
  /** Path and query sent to the sandbox (starts with `/`). */
  path: string;
  /** The public prefix the sandbox's paths live under (`/p/<id>` or the API's), "" at the root. */
  prefix: string;
  /** Headers added to every answer (CSP, referrer policy). */
  answerHeaders: Record<string, string>;
  /** No answer head within this long after the request was sent: 504. */
  answerTimeoutMs: number;
  maxHeaderBytes: number;
  /** Added as X-Forwarded-* so apps can build their own URLs. */
  forwarded: { host: string | undefined; proto: string };
}

/** Rebuilds the request headers the sandbox sees. */
export function requestHeadersForSandbox(
  headers: IncomingHttpHeaders,
  target: { port: number },
  options: Pick<RelayOptions, "prefix" | "forwarded">,
  upgrade: boolean,
): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (POLYDEV_REQUEST_HEADERS.has(name) || name.startsWith("x-forwarded-")) continue;
    if (name === "cookie") {
      const kept = keptCookies(Array.isArray(value) ? value.join("; ") : value);
      if (kept !== "") out.cookie = kept;
      continue;
    }
    out[name] = value;
  }
  // Dev servers (Vite, webpack) only answer hosts they know; loopback is what they expect.
  out.host = `localhost:${target.port}`;
  if (options.forwarded.host !== undefined) out["x-forwarded-host"] = options.forwarded.host;
  out["x-forwarded-proto"] = options.forwarded.proto;
  if (options.prefix !== "") out["x-forwarded-prefix"] = options.prefix;
  if (upgrade) {
    out.connection = "Upgrade";
    out.upgrade = headers.upgrade ?? "websocket";
  }
  return out;
}

function connectionTokens(value: string | undefined): Set<string> {
  return new Set(
    (value ?? "")
      .split(",")
      .map((token) => token.trim().toLowerCase())
      .filter(Boolean),
  );
}

function keptCookies(header: string): string {
  return header
    .split(";")
    .map((pair) => pair.trim())
    .filter((pair) => pair !== "" && !isPolydevCookie(pair.split("=", 1)[0] ?? ""))
    .join("; ");
}

/**
 * The sandbox's answer headers as the client sees them: hop-by-hop ones dropped, cookies kept
 * under the preview's own path and host (a `Domain` would reach sibling previews or the
 * dashboard), redirects to the sandbox's own paths kept under the prefix, ours added.
 */
export function answerHeadersForClient(
  headers: IncomingHttpHeaders,
  options: Pick<RelayOptions, "prefix" | "answerHeaders">,
): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (name === "set-cookie" && Array.isArray(value)) {
      const kept = value.map((cookie) => scopeCookie(cookie, options.prefix)).filter((c) => c !== undefined);
      if (kept.length > 0) out[name] = kept;
      continue;
    }
    if (name === "location" && typeof value === "string") {
      out[name] = value.startsWith("/") && !value.startsWith("//") ? `${options.prefix}${value}` : value;
      continue;
    }
    out[name] = value;
  }
  for (const [name, value] of Object.entries(options.answerHeaders)) {
    const existing = out[name];
    // CSPs add up (each one is enforced), so the sandbox's own cannot loosen ours.
    out[name] =
      existing === undefined || name !== "content-security-policy" ? value : [value, String(existing)];
  }
  return out;
}

/** A cookie the sandbox sets, scoped to the preview: no Domain, Path under the prefix. */
export function scopeCookie(cookie: string, prefix: string): string | undefined {
  const [pair = "", ...attributes] = cookie.split(";");
  const name = pair.split("=", 1)[0]?.trim() ?? "";
  // A sandbox must not set (or shadow) Polydev's own cookies.
  if (name === "" || isPolydevCookie(name)) return undefined;
  let path = "/";
  const kept: string[] = [];
  for (const attribute of attributes) {
    const key = attribute.split("=", 1)[0]?.trim().toLowerCase() ?? "";
    if (key === "domain") continue;
    if (key === "path") {
      const value = attribute.slice(attribute.indexOf("=") + 1).trim();
      if (value.startsWith("/")) path = value;
      continue;
    }
    kept.push(attribute.trim());
  }
  const scopedPath = prefix === "" ? path : `${prefix}${path}`;
  return [pair.trim(), ...kept, `Path=${scopedPath}`].join("; ");
}

/** Writes a Polydev error as the answer, unless an answer already started (then the connection ends). */
export function answerError(response: ServerResponse, error: PolydevError): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = JSON.stringify(error.toJSON());
  response.writeHead(error.status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  response.end(body);
}

/** Why relaying failed, as the client's error. */
export function relayFailure(error: unknown, port: number): PolydevError {
  if (error instanceof PolydevError) {
    if (error.code === "port_unreachable") {
      return new PolydevError(
        "port_unreachable",
        `nothing listens on port ${port} in the sandbox: start a server there on 127.0.0.1 or 0.0.0.0 (GET …/ports lists the listening ones)`,
        { details: { port } },
      );
    }
    return error;
  }
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === "HPE_HEADER_OVERFLOW") {
    return new PolydevError(
      "upstream_unreachable",
      `the server on port ${port} sent too large an answer head`,
    );
  }
  return new PolydevError(
    "upstream_unreachable",
    `the server on port ${port} in the sandbox closed the connection without a valid answer`,
    { details: { port } },
  );
}

function timeoutError(port: number, ms: number): PolydevError {
  return new PolydevError(
    "timeout",
    `the server on port ${port} in the sandbox sent no answer within ${ms} ms`,
    {
      details: { port, timeoutMs: ms },
    },
  );
}

/**
 * Relays one HTTP request and its answer. Never rejects: every failure becomes an error answer
 * (or, once the answer started, the end of the connection).
 */
export async function relayHttp(
  request: IncomingMessage,
  response: ServerResponse,
  target: RelayTarget,
  options: RelayOptions,
): Promise<void> {
  const stopped = new AbortController();
  const stop = (): void => stopped.abort();
  response.once("close", stop);
  request.once("error", stop);
  try {
    // Only bodiless requests ride kept-alive connections: one the app closed just then fails on
    // reuse, and only a request without a body can be sent once more.
    const pooled = RETRYABLE_METHODS.has(request.method ?? "") ? target.agent : undefined;
    const upstream = pooled === undefined ? await target.connect(stopped.signal) : undefined;
    if (stopped.signal.aborted) {
      upstream?.destroy();
      return;
    }
    await new Promise<void>((resolve) => {
      const send = (retried: boolean) => {
        const outgoing = httpRequest({
          method: request.method,
          path: options.path,
          headers: requestHeadersForSandbox(request.headers, target, options, false),
          ...(upstream === undefined ? { agent: pooled } : { createConnection: () => upstream as never }),
          maxHeaderSize: options.maxHeaderBytes,
          setHost: false,
        });
        return { outgoing, retried };
      };
      let { outgoing } = send(false);
      let answered = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (error?: PolydevError): void => {
        clearTimeout(timer);
        if (error !== undefined && !answered) {
          answered = true;
          answerError(response, error);
        }
        // A pooled connection goes back to its agent (or was destroyed with a failed request).
        upstream?.destroy();
        resolve();
      };
      stopped.signal.addEventListener("abort", () => {
        outgoing.destroy();
        finish();
      });
      let retried = false;
      const wire = (): void => {
        // Counted from when the whole request was sent: a long upload is not a silent sandbox.
        outgoing.once("finish", () => {
          if (answered) return;
          timer = setTimeout(() => {
            finish(timeoutError(target.port, options.answerTimeoutMs));
            outgoing.destroy();
          }, options.answerTimeoutMs);
        });
        outgoing.on("error", (error) => {
          // A kept-alive connection the app closed meanwhile: a bodiless request is sent again.
          if (outgoing.reusedSocket && !answered && !retried && RETRYABLE_METHODS.has(request.method ?? "")) {
            retried = true;
            clearTimeout(timer);
            outgoing = send(true).outgoing;
            wire();
            outgoing.end();
            return;
          }
          finish(relayFailure(error, target.port));
        });
        outgoing.on("response", (answer) => {
          clearTimeout(timer);
          answered = true;
          response.writeHead(answer.statusCode ?? 502, answerHeadersForClient(answer.headers, options));
          pipeline(answer, response).then(
            () => finish(),
            () => {
              response.destroy();
              finish();
            },
          );
        });
      };
      wire();
      pipeline(request, outgoing).catch(() => outgoing.destroy());
    });
  } catch (error) {
    answerError(response, relayFailure(error, target.port));
  } finally {
    response.off("close", stop);
  }
}

/**
 * Relays a WebSocket (any Upgrade) request: the sandbox's 101 answer head is written to the
 * client's socket and both sockets are joined; any other answer is relayed as a plain one and
 * the connection closed. Never rejects.
 */
export async function relayUpgrade(
  request: IncomingMessage,
  client: Duplex,
  head: Buffer,
  target: RelayTarget,
  options: RelayOptions,
): Promise<void> {
  const stopped = new AbortController();
  const stop = (): void => stopped.abort();
  client.once("close", stop);
  client.on("error", () => undefined);
  try {
    const upstream = await target.connect(stopped.signal);
    if (stopped.signal.aborted) {
      upstream.destroy();
      return;
    }
    upstream.on("error", () => undefined);
    await new Promise<void>((resolve) => {
      const outgoing = httpRequest({
        method: request.method,
        path: options.path,
        headers: requestHeadersForSandbox(request.headers, target, options, true),
        createConnection: () => upstream as never,
        maxHeaderSize: options.maxHeaderBytes,
        setHost: false,
      });
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const fail = (error: PolydevError): void => {
        clearTimeout(timer);
        writeRawError(client, error);
        upstream.destroy();
        resolve();
      };
      const timer = setTimeout(() => {
        outgoing.destroy();
        fail(timeoutError(target.port, options.answerTimeoutMs));
      }, options.answerTimeoutMs);
      stopped.signal.addEventListener("abort", () => {
        outgoing.destroy();
        upstream.destroy();
        done();
      });
      outgoing.on("error", (error) => fail(relayFailure(error, target.port)));
      outgoing.on("upgrade", (answer, socket, upstreamHead) => {
        clearTimeout(timer);
        client.write(
          rawHead(101, answer.statusMessage ?? "Switching Protocols", {
            ...answerHeadersForClient(answer.headers, { ...options, answerHeaders: {} }),
            connection: "Upgrade",
            upgrade: answer.headers.upgrade ?? "websocket",
          }),
        );
        if (upstreamHead.length > 0) client.write(upstreamHead);
        if (head.length > 0) socket.write(head);
        const end = (): void => {
          socket.destroy();
          client.destroy();
          done();
        };
        Promise.allSettled([pipeline(socket, client), pipeline(client, socket)]).then(end, end);
      });
      outgoing.on("response", (answer) => {
        // The sandbox refused the upgrade: relay its answer and close.
        clearTimeout(timer);
        const headers = answerHeadersForClient(answer.headers, options);
        delete headers["content-length"];
        client.write(
          rawHead(answer.statusCode ?? 502, answer.statusMessage ?? "", { ...headers, connection: "close" }),
        );
        pipeline(answer, client).then(done, () => {
          client.destroy();
          done();
        });
      });
      outgoing.end();
    });
  } catch (error) {
    writeRawError(client, relayFailure(error, target.port));
  } finally {
    client.off("close", stop);
  }
}

/** An answer head for a raw socket; values come from Node's parser or from us (no CR/LF). */
function rawHead(status: number, message: string, headers: OutgoingHttpHeaders): string {
  const lines = [`HTTP/1.1 ${status} ${message.replace(/[\r\n]/g, "")}`];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) {
      const text = String(one);
      if (/[\r\n]/.test(text) || /[\r\n:]/.test(name)) continue;
      lines.push(`${name}: ${text}`);
    }
  }
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** An error answer on a socket no HTTP response object owns (an upgrade), then the end of it. */
export function writeRawError(socket: Duplex, error: PolydevError): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(error.toJSON());
  socket.end(
    rawHead(error.status, statusText(error.status), {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      connection: "close",
    }) + body,
  );
}

function statusText(status: number): string {
  const texts: Record<number, string> = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    502: "Bad Gateway",
    504: "Gateway Timeout",
  };
  return texts[status] ?? "Error";
}
