/**
 * Preview URLs: what the API routes and the preview listener share. Reaching a sandbox port
 * (a `forward.in` per connection, capped per sandbox), making signed links, and the preview
 * origin's addresses in its two modes (see preview-listener.ts).
 */
import { Agent } from "node:http";
import type { Duplex } from "node:stream";
import type { AgentConnection, SandboxRecord } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { PolydevConfig } from "../config.js";
import type { PreviewLinks, PreviewSession } from "./preview-links.js";
import { MAX_PRIVATE_LINK_TTL_MS, newPreviewId } from "./preview-links.js";
import type { RelayTarget } from "./preview-relay.js";
import type { SandboxService } from "./sandbox-service.js";

/** Where the preview origin's links point; set once its listener is up. */
export interface PreviewOrigin {
  /** `http://127.0.0.1:7421` (path mode) or the scheme and port suffix for host mode. */
  baseUrl: string;
  /** Host mode's wildcard domain, when configured. */
  domain: string | undefined;
}

export const ENTER_PATH = "/__polydev/enter";
export const PREVIEW_COOKIE = "polydev_preview";
const SHARE_LINK_DEFAULT_TTL_MS = 60 * 60_000;
/** How long a kept-alive connection to a sandbox port may sit unused before it is closed. */
const IDLE_POOLED_MS = 1_000;

export function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PolydevError(
      "invalid_request",
      `port must be a TCP port number (1-65535), got "${text.slice(0, 20)}"`,
    );
  }
  return port;
}

/**
 * A sandbox id in a host name: DNS labels are case-insensitive and ids are base64url, so the
 * id's random part travels as lower-case hex (`sbx_AbC…` ⇄ `sbx-0a1b…`).
 */
export function sandboxIdToLabel(sandboxId: string): string | undefined {
  const match = /^([a-z]+)_([A-Za-z0-9_-]+)$/.exec(sandboxId);
  if (!match?.[1] || !match[2]) return undefined;
  const bytes = Buffer.from(match[2], "base64url");
  if (bytes.toString("base64url") !== match[2]) return undefined;
  return `${match[1]}-${bytes.toString("hex")}`;
}

export function labelToSandboxId(label: string): string | undefined {
  const match = /^([a-z]+)-((?:[0-9a-f]{2})+)$/.exec(label);
  if (!match?.[1] || !match[2]) return undefined;
  return `${match[1]}_${Buffer.from(match[2], "hex").toString("base64url")}`;
}

export class PreviewService {
  private readonly open = new Map<string, number>();
  /** Relayed WebSockets: their sockets left the HTTP servers' books, so closing ends them here. */
  private readonly upgraded = new Set<Duplex>();
  private origin: PreviewOrigin | undefined;
  /**
   * Keep-alive agents per agent connection and port: a sandbox's new connection (a restart, a
   * resume) starts new ones, and the old ones go with it.
   */
  private readonly agents = new WeakMap<AgentConnection, Map<number, Agent>>();

  constructor(
    readonly config: PolydevConfig["preview"],
    private readonly sandboxes: SandboxService,
    readonly links: PreviewLinks,
    private readonly now: () => number,
    /** With replicas: the target for a sandbox another node hosts (see remote-ports.ts). */
    private readonly remote: (
      sandbox: SandboxRecord,
      userId: string,
      port: number,
    ) => Promise<RelayTarget | undefined> = async () => undefined,
  ) {}

  /** Called by the preview listener once it listens. */
  useOrigin(origin: PreviewOrigin): void {
    this.origin = origin;
  }

  /**
   * Takes one of the sandbox's proxied-connection slots; the returned function gives it back
   * (once). `limit_exceeded` when all are taken.
   */
  acquire(sandboxId: string): () => void {
    const count = this.open.get(sandboxId) ?? 0;
    if (count >= this.config.maxConnectionsPerSandbox) {
      throw new PolydevError(
        "limit_exceeded",
        `sandbox ${sandboxId} already has ${count} preview connections open (the limit); close some and retry`,
        { details: { limit: this.config.maxConnectionsPerSandbox } },
      );
    }
    this.open.set(sandboxId, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(sandboxId) ?? 1) - 1;
      if (left <= 0) this.open.delete(sandboxId);
      else this.open.set(sandboxId, left);
    };
  }

  /** Keeps an upgraded (relayed) socket until it closes, so `closeAll` can end it. */
  trackUpgrade(socket: Duplex): void {
    this.upgraded.add(socket);
    socket.once("close", () => this.upgraded.delete(socket));
  }

  /** Ends every relayed WebSocket (the server is closing: they would hold it open). */
  closeAll(): void {
    for (const socket of this.upgraded) socket.destroy();
  }

  openConnections(sandboxId: string): number {
    return this.open.get(sandboxId) ?? 0;
  }

  /** A port of a sandbox the user owns (404 otherwise; 409 when it is not running). */
  async target(userId: string, sandboxId: string, port: number): Promise<RelayTarget> {
    const running = await this.sandboxes.requireRunning(userId, sandboxId);
    const remote = await this.remote(running, userId, port);
    if (remote) return remote;
    const { sandbox, agent } = await this.sandboxes.agent(userId, sandboxId);
    this.sandboxes.touch(sandbox.id);
    return {
      port,
      agent: this.agentFor(agent, port),
      connect: (signal) => agent.forwardIn(port, signal),
    };
  }

  private agentFor(connection: AgentConnection, port: number): Agent {
    let byPort = this.agents.get(connection);
    if (byPort === undefined) {
      byPort = new Map();
      this.agents.set(connection, byPort);
    }
    let agent = byPort.get(port);
    if (agent === undefined) {
      agent = new Agent({
        keepAlive: true,
        maxSockets: this.config.maxConnectionsPerSandbox,
        // Idle connections stay open in the sandbox until its app closes them: only a few kept.
        maxFreeSockets: 4,
      });
      // Node's agents take an asynchronous connection through the callback form.
      agent.createConnection = ((_options: unknown, done: (error: Error | null, socket?: Duplex) => void) => {
        connection.forwardIn(port).then(
          (socket) => done(null, socket),
          (error: Error) => done(error),
        );
        return undefined;
      }) as never;
      // A forwarded connection cannot tell an idle one closed by the app (its keep-alive timing
      // out) until it is written to again, so idle ones are dropped well before apps drop them
      // (Node's servers after 5 s, gunicorn after 2 s).
      const pool = agent;
      pool.on("free", (socket: Duplex) => {
        setTimeout(() => {
          const free = Object.values(pool.freeSockets).some((list) => list?.includes(socket as never));
          if (free) socket.destroy();
        }, IDLE_POOLED_MS).unref();
      });
      byPort.set(port, agent);
    }
    return agent;
  }

  /** A signed link that opens the port in a browser, on the preview origin. */
  async createLink(
    userId: string,
    sandboxId: string,
    port: number,
    options: { expiresInMs?: number | undefined; share?: boolean | undefined },
  ): Promise<{ url: string; expiresAt: number; share: boolean }> {
    const origin = this.origin;
    if (origin === undefined) {
      throw new PolydevError(
        "feature_unavailable",
        "this server has no preview origin (POLYDEV_PREVIEW_LISTEN is off); use the API form /v1/sandboxes/:id/ports/:port/ with a key",
      );
    }
    // Checks ownership and that the sandbox runs: a link to someone else's sandbox is never made.
    await this.sandboxes.agent(userId, sandboxId);
    const share = options.share === true;
    const maxTtl = share
      ? this.config.maxLinkTtlMs
      : Math.min(MAX_PRIVATE_LINK_TTL_MS, this.config.maxLinkTtlMs);
    const ttl = options.expiresInMs ?? (share ? SHARE_LINK_DEFAULT_TTL_MS : this.config.linkTtlMs);
    if (ttl > maxTtl) {
      throw new PolydevError(
        "invalid_request",
        share
          ? `expiresIn must be at most ${maxTtl / 1000} s for a share link`
          : `expiresIn must be at most ${maxTtl / 1000} s for a private link (use share: true for a longer one)`,
        { details: { maxSeconds: maxTtl / 1000 } },
      );
    }
    const expiresAt = this.now() + ttl;
    const grant = { sandboxId, port, userId, previewId: newPreviewId(), share };
    const token = await this.links.signLink(grant, expiresAt);
    return { url: `${this.enterUrl(grant)}?token=${token}`, expiresAt, share };
  }

  /** Where a link is opened: the origin's enter path, on the preview's own host in host mode. */
  private enterUrl(grant: Pick<PreviewSession, "sandboxId" | "port">): string {
    const origin = this.origin;
    if (origin === undefined)
      throw new PolydevError("feature_unavailable", "this server has no preview origin");
    if (origin.domain === undefined) return `${origin.baseUrl}${ENTER_PATH}`;
    const label = sandboxIdToLabel(grant.sandboxId);
    if (label === undefined) {
      throw new PolydevError(
        "feature_unavailable",
        `sandbox id ${grant.sandboxId} cannot be written in a host name`,
      );
    }
    const base = new URL(origin.baseUrl);
    return `${base.protocol}//${grant.port}-${label}.${origin.domain}${base.port === "" ? "" : `:${base.port}`}${ENTER_PATH}`;
  }
}
