/**
 * Connects sandboxes to the provider gateway. Each sandbox gets a placeholder key and base URLs
 * pointing at its own loopback; the first use asks its agent to forward that loopback port out
 * (a `forward.out` channel of the agent protocol, see packages/agent/PROTOCOL.md), and every
 * connection a sandbox process makes to it arrives here as a flow-controlled channel, served by
 * the gateway with that sandbox's identity. Nothing runs in the sandbox for it beyond the init's
 * own forwarder, and a sandbox cannot make the server buffer more than its channel windows and
 * MAX_TUNNEL_CONNECTIONS connections.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { createServer } from "node:http";
import type { Duplex } from "node:stream";
import type { AgentConnection, ForwardedPort, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Gateway, GatewayProvider } from "@polydev/gateway";
import { createGateway, GATEWAY_SERVER_OPTIONS } from "@polydev/gateway";
import type { Logger } from "pino";
import type { CredentialService } from "./credential-service.js";

/** Connections one sandbox may have open to the gateway at once; more are closed on arrival. */
const MAX_TUNNEL_CONNECTIONS = 32;
/** An idle keep-alive connection is closed after this long. */
const KEEP_ALIVE_TIMEOUT_MS = 30_000;
/**
 * Requests one sandbox may make through its gateway: a burst, refilled at a steady rate. Far
 * above what an agent CLI needs, and what bounds the usage rows (and the work) a sandbox can
 * cause per second.
 */
const REQUEST_BURST = 60;
const REQUESTS_PER_SECOND = 20;
/** Model names come from the sandbox's request bodies: recorded at most this long. */
const MAX_MODEL_NAME_LENGTH = 128;

export function hashPlaceholder(placeholder: string): string {
  return createHash("sha256").update(placeholder).digest("hex");
}

/** The environment a sandbox's tools need to reach providers through the gateway. */
export function gatewayEnv(port: number, placeholder: string): Record<string, string> {
  const base = `http://127.0.0.1:${port}`;
  return {
    POLYDEV_GATEWAY_URL: base,
    ANTHROPIC_BASE_URL: `${base}/anthropic`,
    ANTHROPIC_API_KEY: placeholder,
    OPENAI_BASE_URL: `${base}/openai/v1`,
    OPENAI_API_KEY: placeholder,
    CODEX_API_KEY: placeholder,
    GOOGLE_GEMINI_BASE_URL: `${base}/gemini`,
    GEMINI_API_KEY: placeholder,
  };
}

interface Tunnel {
  forwarded: ForwardedPort;
  server: Server;
}

export class GatewayHub {
  readonly gateway: Gateway;
  private readonly tunnels = new Map<string, Promise<Tunnel>>();
  /** Asked before each relayed request (quotas); a PolydevError it throws is the answer. */
  private admission: ((userId: string) => Promise<void>) | undefined;

  constructor(
    private readonly store: Store,
    credentials: CredentialService,
    upstreams: Record<GatewayProvider, string>,
    readonly port: number,
    private readonly log: Logger,
    proxy: string | undefined,
  ) {
    this.gateway = createGateway({
      upstreams,
      resolvePlaceholder: async (placeholder) => {
        const token = await store.gatewayTokens.findByHash(hashPlaceholder(placeholder));
        return token ? { userId: token.userId, sandboxId: token.sandboxId } : undefined;
      },
      credentialFor: async (userId, provider) => {
        await this.admission?.(userId);
        return credentials.credentialFor(userId, provider);
      },
      recordUsage: (record) => {
        void store.usage
          .record({ ...record, model: (record.model ?? "unknown").slice(0, MAX_MODEL_NAME_LENGTH) })
          .catch((error: unknown) => log.warn({ err: error }, "could not record gateway usage"));
      },
      // A request that would leave the provider's API (another host, another path) is refused
      // before any credential is looked up; it is logged here, without its query or key.
      onRefused: (refusal) => log.warn({ ...refusal }, "gateway refused a request"),
      // A proxy pinned to the user wins over the operator's default; both are plain, declared proxies.
      proxyFor: async (userId) => (await store.users.getEgressProxy(userId)) ?? proxy,
    });
  }

  useAdmission(admission: (userId: string) => Promise<void>): void {
    this.admission = admission;
  }

  /** A new placeholder for a sandbox; only its hash is stored. */
  async issuePlaceholder(userId: string, sandboxId: string, now: number): Promise<string> {
    const placeholder = `pdg_${randomBytes(24).toString("base64url")}`;
    await this.store.gatewayTokens.create({
      tokenHash: hashPlaceholder(placeholder),
      sandboxId,
      userId,
      createdAt: now,
    });
    return placeholder;
  }

  /** Starts the sandbox's forwarder if it is not running; resolves once it listens. */
  ensureTunnel(sandboxId: string, agent: AgentConnection): Promise<void> {
    let tunnel = this.tunnels.get(sandboxId);
    if (!tunnel) {
      tunnel = this.openTunnel(sandboxId, agent);
      this.tunnels.set(sandboxId, tunnel);
      tunnel.catch(() => this.tunnels.delete(sandboxId));
    }
    return tunnel.then(() => undefined);
  }

  closeTunnel(sandboxId: string): void {
    const tunnel = this.tunnels.get(sandboxId);
    this.tunnels.delete(sandboxId);
    tunnel?.then(
      (t) => {
        t.forwarded.close();
        t.server.close();
        t.server.closeAllConnections();
      },
      () => undefined,
    );
  }

  async close(): Promise<void> {
    for (const id of [...this.tunnels.keys()]) this.closeTunnel(id);
    await this.gateway.close();
  }

  private async openTunnel(sandboxId: string, agent: AgentConnection): Promise<Tunnel> {
    const bucket = new TokenBucket(REQUEST_BURST, REQUESTS_PER_SECOND);
    const server = createServer(
      { ...GATEWAY_SERVER_OPTIONS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS },
      (req, res) => {
        if (bucket.take(Date.now())) {
          this.gateway.handle(req, res, { sandboxId });
          return;
        }
        const error = new PolydevError(
          "limit_exceeded",
          `this sandbox makes more than ${REQUESTS_PER_SECOND} gateway requests a second; slow down`,
        );
        res.writeHead(error.status, { "content-type": "application/json", "retry-after": "1" });
        res.end(JSON.stringify(error.toJSON()));
      },
    );
    // A malformed request from inside the sandbox ends its own connection, nothing else.
    server.on("clientError", (_error, socket) => socket.destroy());
    let open = 0;
    const accept = (socket: Duplex): void => {
      socket.on("error", () => undefined);
      if (open >= MAX_TUNNEL_CONNECTIONS) {
        socket.destroy();
        return;
      }
      open++;
      socket.once("close", () => open--);
      server.emit("connection", socket);
    };
    const forwarded = await agent.forwardOut(this.port, accept);
    const tunnel: Tunnel = { forwarded, server };
    // The sandbox went away or its agent connection was replaced: the next use opens a new one.
    forwarded.closed
      .then(() => {
        const current = this.tunnels.get(sandboxId);
        void current?.then(
          (t) => {
            if (t === tunnel) this.tunnels.delete(sandboxId);
          },
          () => undefined,
        );
        server.close();
        server.closeAllConnections();
      })
      .catch(() => undefined);
    this.log.info({ sandboxId, port: this.port }, "gateway tunnel open");
    return tunnel;
  }
}

/** A token bucket: `burst` tokens, refilled at `perSecond`. */
class TokenBucket {
  private tokens: number;
  private at = 0;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }

  take(now: number): boolean {
    if (this.at !== 0)
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
