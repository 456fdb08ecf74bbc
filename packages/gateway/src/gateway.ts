/**
 * The provider relay. A client inside a sandbox calls `/<provider>/<upstream path>` with a
 * placeholder key; the gateway finds whose sandbox that placeholder belongs to, swaps in the
 * owner's real credential, forwards to the configured upstream and streams the answer back
 * chunk by chunk, counting tokens on the way. The real credential never reaches the sandbox.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { PolydevError } from "@polydev/core";
import type { Dispatcher } from "undici";
import { Agent, ProxyAgent, request } from "undici";
import type { GatewayProvider, UpstreamCredential } from "./providers.js";
import { applyCredential, GATEWAY_PROVIDERS, placeholderFrom } from "./providers.js";
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

export interface GatewayOptions {
  /** Upstream base URL per provider (POLYDEV_<PROVIDER>_BASE_URL). */
  upstreams: Record<GatewayProvider, string>;
  resolvePlaceholder(placeholder: string): Promise<PlaceholderOwner | undefined>;
  /** The owner's credential for a provider, refreshed if it is an expiring OAuth token. */
  credentialFor(userId: string, provider: GatewayProvider): Promise<UpstreamCredential | undefined>;
  recordUsage(record: UsageRecord): void;
  /** An operator-declared HTTP(S) proxy for a user's upstream traffic, if any. */
  proxyFor?(userId: string): Promise<string | undefined>;
  now?(): number;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) and ones the relay must set itself. */
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
]);
const DROPPED_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "content-encoding",
]);

/** Far above any real prompt; stops a runaway client from filling the server's memory. */
const MAX_REQUEST_BYTES = 64 * 1024 * 1024;

export interface Gateway {
  /** `via`: the sandbox whose tunnel carried the request; its placeholder must be that sandbox's. */
  handle(req: IncomingMessage, res: ServerResponse, via?: { sandboxId: string }): void;
  close(): Promise<void>;
}

export function createGateway(options: GatewayOptions): Gateway {
  const direct = new Agent({ keepAliveTimeout: 30_000 });
  const proxies = new Map<string, ProxyAgent>();
  const dispatcherFor = async (userId: string): Promise<Dispatcher> => {
    const proxy = await options.proxyFor?.(userId);
    if (!proxy) return direct;
    let agent = proxies.get(proxy);
    if (!agent) {
      agent = new ProxyAgent(proxy);
      proxies.set(proxy, agent);
    }
    return agent;
  };
  const now = options.now ?? Date.now;

  async function relay(
    req: IncomingMessage,
    res: ServerResponse,
    via?: { sandboxId: string },
  ): Promise<void> {
    const incoming = new URL(req.url ?? "/", "http://gateway.invalid");
    const [, providerName, ...rest] = incoming.pathname.split("/");
    const provider = GATEWAY_PROVIDERS.find((p) => p === providerName);
    if (!provider) {
      throw new PolydevError("not_found", `unknown provider path; use /${GATEWAY_PROVIDERS.join("/…, /")}/…`);
    }
    const placeholder = placeholderFrom(req.headers, incoming);
    const owner = placeholder ? await options.resolvePlaceholder(placeholder) : undefined;
    if (!owner || (via !== undefined && owner.sandboxId !== via.sandboxId)) {
      throw new PolydevError("unauthorized", "the gateway key is not this sandbox's placeholder key");
    }
    const credential = await options.credentialFor(owner.userId, provider);
    if (!credential) {
      throw new PolydevError(
        "not_found",
        `no ${provider} credential stored; add one with PUT /v1/credentials/${provider}`,
      );
    }

    const upstream = new URL(options.upstreams[provider]);
    const target = new URL(
      `${upstream.pathname.replace(/\/$/, "")}/${rest.join("/")}${incoming.search}`,
      upstream,
    );
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || DROPPED_REQUEST_HEADERS.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(", ") : value;
    }
    applyCredential(provider, credential, headers, target);

    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const { body, model, streaming } = hasBody
      ? await peekRequest(req, provider, target)
      : { body: undefined, model: undefined, streaming: false };
    const response = await request(target, {
      method: (req.method ?? "GET") as Dispatcher.HttpMethod,
      headers,
      body,
      dispatcher: await dispatcherFor(owner.userId),
      headersTimeout: 300_000,
      bodyTimeout: 600_000,
    });

    const responseHeaders: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      if (value !== undefined && !DROPPED_RESPONSE_HEADERS.has(name)) responseHeaders[name] = value;
    }
    res.writeHead(response.statusCode, responseHeaders);
    const contentType = String(response.headers["content-type"] ?? "");
    const meter = new UsageMeter(provider, streaming || contentType.includes("event-stream"), model);
    const closeUpstream = (): void => {
      response.body.destroy();
    };
    res.once("close", closeUpstream);
    // A client that goes away mid-stream aborts the upstream read: that ends the relay, it is not a fault.
    response.body.on("error", () => meter.end());
    response.body.pipe(meter).pipe(res);
    await new Promise<void>((resolve) => {
      res.once("close", resolve);
      res.once("finish", resolve);
    });
    options.recordUsage({
      ...meter.usage,
      userId: owner.userId,
      sandboxId: owner.sandboxId,
      provider,
      status: response.statusCode,
      at: now(),
    });
  }

  return {
    handle(req, res, via) {
      relay(req, res, via).catch((error: unknown) => {
        const known =
          error instanceof PolydevError
            ? error
            : new PolydevError("sandbox_failed", "the provider could not be reached through the gateway");
        if (!res.headersSent) {
          res.writeHead(known.status, { "content-type": "application/json" });
          res.end(JSON.stringify(known.toJSON()));
        } else {
          res.destroy();
        }
      });
    },
    async close() {
      await direct.close();
      await Promise.all([...proxies.values()].map((p) => p.close()));
    },
  };
}

/**
 * Reads the request's model and stream flag for metering. Bodies are JSON prompts, small enough
 * to hold once; the model of a Gemini call is in its path instead.
 */
async function peekRequest(
  req: IncomingMessage,
  provider: GatewayProvider,
  target: URL,
): Promise<{ body: Buffer; model: string | undefined; streaming: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_REQUEST_BYTES) {
      throw new PolydevError(
        "payload_too_large",
        `provider requests are limited to ${MAX_REQUEST_BYTES} bytes`,
      );
    }
    chunks.push(chunk as Buffer);
  }
  const body = Buffer.concat(chunks);
  let model: string | undefined;
  let streaming = false;
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { model?: unknown; stream?: unknown };
    model = typeof parsed.model === "string" ? parsed.model : undefined;
    streaming = parsed.stream === true;
  } catch {
    // Not JSON: forwarded untouched, metered by its response only.
  }
  if (provider === "gemini") {
    const match = /models\/([^/:]+):(\w+)/.exec(target.pathname);
    model = match?.[1] ?? model;
    streaming = match?.[2] === "streamGenerateContent";
  }
  return { body, model, streaming };
}
