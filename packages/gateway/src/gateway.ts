/**
 * The provider relay. A client inside a sandbox calls `/<provider>/<API path>` with a placeholder
 * key; the gateway checks the path against the provider's API, finds whose sandbox that
 * placeholder belongs to, swaps in the owner's real credential, forwards to the configured
 * upstream and streams the answer back chunk by chunk, counting tokens on the way. The real
 * credential never reaches the sandbox, and goes nowhere but the configured upstream.
 */
import type { IncomingMessage, ServerOptions, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import type { ErrorCode } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Dispatcher } from "undici";
import { Agent, ProxyAgent } from "undici";
import type { GatewayProvider, UpstreamCredential } from "./providers.js";
import { applyCredential, placeholderFrom } from "./providers.js";
import { readBody } from "./read-body.js";
import type { GatewayLimits, RequestTicket } from "./request-budget.js";
import { DEFAULT_GATEWAY_LIMITS, RequestBudget } from "./request-budget.js";
import { checkRequestTarget, describeTarget, upstreamUrl } from "./request-target.js";
import type { Usage } from "./usage-meter.js";
import { UsageMeter } from "./usage-meter.js";

export interface PlaceholderOwner {
  userId: string;
  sandboxId: string;
}

export interface UsageRecord extends Usage {
  userId: string;
  sandboxId: string;
  provider: GatewayProvider;
  status: number;
  at: number;
}

/** A request the gateway answered itself with a 4xx instead of relaying it. Never holds a key. */
export interface GatewayRefusal {
  /** The sandbox whose tunnel carried the request, when known. */
  sandboxId?: string;
  provider?: GatewayProvider;
  method: string;
  /** The request path, without its query, cut short and with unprintable characters escaped. */
  path: string;
  code: ErrorCode;
  reason: string;
}

export interface GatewayOptions {
  /** Upstream base URL per provider (POLYDEV_<PROVIDER>_BASE_URL); the only place keys are sent. */
  upstreams: Record<GatewayProvider, string>;
  resolvePlaceholder(placeholder: string): Promise<PlaceholderOwner | undefined>;
  /** The owner's credential for a provider, refreshed if it is an expiring OAuth token. */
  credentialFor(userId: string, provider: GatewayProvider): Promise<UpstreamCredential | undefined>;
  recordUsage(record: UsageRecord): void;
  /** An operator-declared HTTP(S) proxy for a user's upstream traffic, if any. */
  proxyFor?(userId: string): Promise<string | undefined>;
  /** Told of every request refused (path outside the provider APIs, bad key, over a limit), to log it. */
  onRefused?(refusal: GatewayRefusal): void;
  /** Memory and time bounds; each defaults to DEFAULT_GATEWAY_LIMITS. */
  limits?: Partial<GatewayLimits>;
  now?(): number;
}

/**
 * Options for the HTTP server that parses sandbox connections for the gateway: small headers,
 * and a request that must arrive in bounded time (the gateway bounds bodies itself as well).
 */
export const GATEWAY_SERVER_OPTIONS: Readonly<ServerOptions> = Object.freeze({
  maxHeaderSize: 16 * 1024,
  headersTimeout: 30_000,
  requestTimeout: 180_000,
});

/** Hop-by-hop headers (RFC 9110 §7.6.1), ones the relay sets itself, and ones undici refuses. */
const DROPPED_REQUEST_HEADERS = new Set([
  "host",
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "accept-encoding",
  // curl sends it for large bodies; the body is already read, and undici refuses the header.
  "expect",
]);
const DROPPED_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "content-encoding",
]);

/** Headers a sandbox client may send: far above what the provider SDKs and CLIs send. */
const MAX_HEADER_COUNT = 100;
const MAX_HEADER_BYTES = 32 * 1024;

/** Upstream waits: a long prompt may take minutes before its first byte. */
const UPSTREAM_HEADERS_TIMEOUT_MS = 300_000;
const UPSTREAM_BODY_TIMEOUT_MS = 600_000;

/** The largest request body parsed to read its model and stream flag; larger ones are metered by their response. */
const MAX_PEEK_BYTES = 4 * 1024 * 1024;

export interface Gateway {
  /** `via`: the sandbox whose tunnel carried the request; its placeholder must be that sandbox's. */
  handle(req: IncomingMessage, res: ServerResponse, via?: { sandboxId: string }): void;
  /** Requests in flight and request bytes buffered, for one sandbox or for all. */
  stats(sandboxId?: string): { requests: number; bufferedBytes: number };
  close(): Promise<void>;
}

/** An error raised while talking to the upstream, as opposed to one about the request itself. */
class UpstreamFailure extends Error {
  constructor(
    readonly provider: GatewayProvider,
    cause: unknown,
  ) {
    super(`the ${provider} upstream failed`, { cause });
  }
}

export function createGateway(options: GatewayOptions): Gateway {
  const limits: GatewayLimits = { ...DEFAULT_GATEWAY_LIMITS, ...options.limits };
  const budget = new RequestBudget(limits);
  // Redirects are never followed: a 3xx goes back to the client as it is, so a key can only ever
  // be sent to the configured upstream. (undici's default; stated so it stays that way.)
  const direct = new Agent({ keepAliveTimeout: 30_000, maxRedirections: 0 });
  const proxies = new Map<string, ProxyAgent>();
  const dispatcherFor = async (userId: string): Promise<Dispatcher> => {
    const proxy = await options.proxyFor?.(userId);
    if (!proxy) return direct;
    let agent = proxies.get(proxy);
    if (!agent) {
      agent = new ProxyAgent({ uri: proxy, maxRedirections: 0 });
      proxies.set(proxy, agent);
    }
    return agent;
  };
  const now = options.now ?? Date.now;

  async function relay(
    req: IncomingMessage,
    res: ServerResponse,
    via: { sandboxId: string } | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const method = req.method ?? "GET";
    const checked = checkRequestTarget(method, req.url ?? "");
    if (!checked.ok) throw new Refusal("gateway_path_refused", checked.reason, checked.provider);
    const { provider, path, query, queryKey } = checked.target;
    let target: URL;
    try {
      target = upstreamUrl(options.upstreams[provider], path, query);
    } catch (error) {
      throw error instanceof PolydevError ? new Refusal(error.code, error.message, provider) : error;
    }
    if (req.rawHeaders.length / 2 > MAX_HEADER_COUNT || headerBytes(req) > MAX_HEADER_BYTES) {
      throw new Refusal(
        "invalid_request",
        `requests through the gateway may carry at most ${MAX_HEADER_COUNT} headers and ${MAX_HEADER_BYTES} bytes of them`,
        provider,
      );
    }

    const placeholder = placeholderFrom(req.headers, queryKey);
    const owner = placeholder ? await options.resolvePlaceholder(placeholder) : undefined;
    if (!owner || (via !== undefined && owner.sandboxId !== via.sandboxId)) {
      throw new Refusal("unauthorized", "the gateway key is not this sandbox's placeholder key", provider);
    }
    const ticket = admit(owner.sandboxId, provider);
    try {
      const hasBody = method !== "GET" && method !== "HEAD";
      let body: Buffer | undefined;
      try {
        body = hasBody
          ? await readBody(req, ticket, { idleMs: limits.bodyIdleTimeoutMs, totalMs: limits.bodyTimeoutMs })
          : undefined;
      } catch (error) {
        // Over a limit or too slow: a refusal, logged. A client that hung up (ClientGone) is not
        // refused: there is no one left to answer.
        throw error instanceof PolydevError ? new Refusal(error.code, error.message, provider) : error;
      }
      const { model, streaming } = peekRequest(body, provider, path);

      const credential = await options.credentialFor(owner.userId, provider);
      if (!credential) {
        throw new PolydevError(
          "not_found",
          `no ${provider} credential stored; add one with PUT /v1/credentials/${provider}`,
        );
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value === undefined || DROPPED_REQUEST_HEADERS.has(name)) continue;
        headers[name] = Array.isArray(value) ? value.join(", ") : value;
      }
      applyCredential(provider, credential, headers, target);

      const dispatcher = await dispatcherFor(owner.userId);
      let response: Dispatcher.ResponseData;
      try {
        response = await dispatcher.request({
          origin: target.origin,
          path: `${target.pathname}${target.search}`,
          method: method as Dispatcher.HttpMethod,
          headers,
          body: body ?? null,
          signal,
          maxRedirections: 0,
          headersTimeout: UPSTREAM_HEADERS_TIMEOUT_MS,
          bodyTimeout: UPSTREAM_BODY_TIMEOUT_MS,
        });
      } catch (error) {
        throw new UpstreamFailure(provider, error);
      } finally {
        body = undefined;
        ticket.releaseBytes();
      }

      const responseHeaders: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined && !DROPPED_RESPONSE_HEADERS.has(name)) responseHeaders[name] = value;
      }
      try {
        res.writeHead(response.statusCode, responseHeaders);
      } catch (error) {
        // A header Node will not send on: the answer is unusable, and its body must not linger.
        response.body.destroy();
        throw new UpstreamFailure(provider, error);
      }
      const contentType = String(response.headers["content-type"] ?? "");
      const meter = new UsageMeter(provider, streaming || contentType.includes("event-stream"), model);
      // A client that goes away, or an upstream that breaks off, ends this relay and only it; the
      // client then sees a cut connection rather than a stream that looks complete.
      await pipeline(response.body, meter, res).catch(() => {
        res.destroy();
        response.body.destroy();
      });
      try {
        options.recordUsage({
          ...meter.usage,
          userId: owner.userId,
          sandboxId: owner.sandboxId,
          provider,
          status: response.statusCode,
          at: now(),
        });
      } catch {
        // Metering is the caller's; its failure must not fail a relay that has already happened.
      }
    } finally {
      ticket.close();
    }
  }

  function admit(sandboxId: string, provider: GatewayProvider): RequestTicket {
    try {
      return budget.admit(sandboxId);
    } catch (error) {
      throw error instanceof PolydevError ? new Refusal(error.code, error.message, provider) : error;
    }
  }

  function answer(req: IncomingMessage, res: ServerResponse, error: PolydevError): void {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const body = JSON.stringify(error.toJSON());
    // The request body may be unread: the connection is not reused.
    res.writeHead(error.status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      connection: "close",
    });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  return {
    handle(req, res, via) {
      const abort = new AbortController();
      res.once("close", () => {
        if (!res.writableFinished) abort.abort();
      });
      relay(req, res, via, abort.signal).catch((error: unknown) => {
        if (error instanceof Refusal) {
          try {
            options.onRefused?.({
              ...(via ? { sandboxId: via.sandboxId } : {}),
              ...(error.provider ? { provider: error.provider } : {}),
              method: req.method ?? "",
              path: describeTarget(req.url ?? ""),
              code: error.code,
              reason: error.message,
            });
          } catch {
            // Logging a refusal must not stop the refusal.
          }
        }
        answer(req, res, toAnswer(error));
      });
    },
    stats: (sandboxId) => budget.stats(sandboxId),
    async close() {
      await direct.close();
      await Promise.all([...proxies.values()].map((p) => p.close()));
    },
  };
}

/** A request the gateway refuses itself; reported to `onRefused`. */
class Refusal extends PolydevError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly provider: GatewayProvider | undefined,
  ) {
    super(code, message);
  }
}

function toAnswer(error: unknown): PolydevError {
  if (error instanceof PolydevError) return error;
  if (error instanceof UpstreamFailure) {
    const cause = error.cause;
    const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined;
    if (code === "UND_ERR_HEADERS_TIMEOUT") {
      return new PolydevError("timeout", `the ${error.provider} upstream did not answer in time`);
    }
    return new PolydevError("upstream_unreachable", `the ${error.provider} upstream could not be reached`);
  }
  return new PolydevError("internal", "the gateway could not relay the request");
}

function headerBytes(req: IncomingMessage): number {
  let bytes = 0;
  for (const part of req.rawHeaders) bytes += part.length + 2;
  return bytes;
}

/**
 * Reads the request's model and stream flag for metering. Bodies are JSON prompts; a very large
 * one is not parsed (the response names the model too); the model of a Gemini call is in its path.
 */
function peekRequest(
  body: Buffer | undefined,
  provider: GatewayProvider,
  path: string,
): { model: string | undefined; streaming: boolean } {
  let model: string | undefined;
  let streaming = false;
  if (body && body.length <= MAX_PEEK_BYTES) {
    try {
      const parsed: unknown = JSON.parse(body.toString("utf8"));
      if (typeof parsed === "object" && parsed !== null) {
        model = "model" in parsed && typeof parsed.model === "string" ? parsed.model : undefined;
        streaming = "stream" in parsed && parsed.stream === true;
      }
    } catch {
      // Not JSON: forwarded untouched, metered by its response only.
    }
  }
  if (provider === "gemini") {
    const match = /models\/([^/:]+):(\w+)/.exec(path);
    model = match?.[1] ?? model;
    streaming = match?.[2] === "streamGenerateContent";
  }
  return { model, streaming };
}
