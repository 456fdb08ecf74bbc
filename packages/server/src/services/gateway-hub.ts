/**
 * Connects sandboxes to the provider gateway. Each sandbox gets a placeholder key and base URLs
 * pointing at its own loopback; the first use starts the in-sandbox forwarder, whose connections
 * arrive here over the agent channel and are served by the gateway with the sandbox's identity.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { createServer } from "node:http";
import { Duplex } from "node:stream";
import type { AgentConnection, ExecProcess, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Gateway, GatewayProvider } from "@polydev/gateway";
import { createGateway } from "@polydev/gateway";
import type { Logger } from "pino";
import type { CredentialService } from "./credential-service.js";
import { FORWARDER_SCRIPT } from "./gateway-forwarder.js";

const FrameKind = { ready: 0, data: 1, close: 2, open: 3 } as const;
const HEADER_BYTES = 9;

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
  process: ExecProcess;
  server: Server;
}

export class GatewayHub {
  readonly gateway: Gateway;
  private readonly tunnels = new Map<string, Promise<Tunnel>>();

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
      credentialFor: (userId, provider) => credentials.credentialFor(userId, provider),
      recordUsage: (record) => {
        void store.usage
          .record({ ...record, model: record.model ?? "unknown" })
          .catch((error: unknown) => log.warn({ err: error }, "could not record gateway usage"));
      },
      // A proxy pinned to the user wins over the operator's default; both are plain, declared proxies.
      proxyFor: async (userId) => (await store.users.getEgressProxy(userId)) ?? proxy,
    });
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
    void tunnel?.then((t) => {
      t.process.kill("SIGKILL");
      t.server.close();
    });
  }

  async close(): Promise<void> {
    for (const id of [...this.tunnels.keys()]) this.closeTunnel(id);
    await this.gateway.close();
  }

  private async openTunnel(sandboxId: string, agent: AgentConnection): Promise<Tunnel> {
    const server = createServer((req, res) => this.gateway.handle(req, res, { sandboxId }));
    const process = await agent.exec({ argv: ["python3", "-c", FORWARDER_SCRIPT, String(this.port)] });
    const connections = new Map<number, Duplex>();
    const sendFrame = (kind: number, id: number, payload: Buffer = Buffer.alloc(0)): void => {
      const header = Buffer.alloc(HEADER_BYTES);
      header.writeUInt8(kind, 0);
      header.writeUInt32BE(id, 1);
      header.writeUInt32BE(payload.length, 5);
      process.stdin.write(Buffer.concat([header, payload]));
    };

    let stderr = "";
    process.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    const ready = new Promise<void>((resolve, reject) => {
      let pending = Buffer.alloc(0);
      process.stdout.on("data", (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= HEADER_BYTES) {
          const kind = pending.readUInt8(0);
          const id = pending.readUInt32BE(1);
          const length = pending.readUInt32BE(5);
          if (pending.length < HEADER_BYTES + length) break;
          const payload = pending.subarray(HEADER_BYTES, HEADER_BYTES + length);
          pending = pending.subarray(HEADER_BYTES + length);
          if (kind === FrameKind.ready) resolve();
          else if (kind === FrameKind.open)
            connections.set(id, this.accept(server, id, sendFrame, connections));
          else if (kind === FrameKind.data) connections.get(id)?.push(Buffer.from(payload));
          else if (kind === FrameKind.close) connections.get(id)?.push(null);
        }
      });
      process.exited.then(
        (exit) => {
          reject(
            new PolydevError(
              "command_failed",
              `the gateway forwarder stopped (${exit.exitCode}): ${stderr.trim()}`,
            ),
          );
          this.tunnels.delete(sandboxId);
          server.close();
          for (const connection of connections.values()) connection.destroy();
        },
        (error: unknown) => reject(error),
      );
    });
    await ready;
    this.log.info({ sandboxId, port: this.port }, "gateway tunnel open");
    return { process, server };
  }

  /** One tunnelled connection: a duplex whose far end is the forwarder's socket in the sandbox. */
  private accept(
    server: Server,
    id: number,
    sendFrame: (kind: number, id: number, payload?: Buffer) => void,
    connections: Map<number, Duplex>,
  ): Duplex {
    const connection = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        sendFrame(FrameKind.data, id, chunk);
        callback();
      },
      final(callback) {
        sendFrame(FrameKind.close, id);
        callback();
      },
    });
    connection.once("close", () => connections.delete(id));
    // Node's HTTP server takes any duplex as a connection; these methods are what it calls on sockets.
    Object.assign(connection, {
      setTimeout: () => connection,
      setNoDelay: () => connection,
      setKeepAlive: () => connection,
      remoteAddress: "127.0.0.1",
    });
    server.emit("connection", connection);
    return connection;
  }
}
