/**
 * Terminal sessions that outlive their WebSocket. A client names its session with a reconnect id
 * it makes itself; connecting again with the same id reattaches to the same shell and replays
 * the recent screen output. A session without clients is killed after a grace period.
 */
import type { AgentConnection, PtyProcess } from "@polydev/core";
import type { Logger } from "pino";

/** Enough for a full screen of a busy terminal several times over, small enough for hundreds. */
const SCROLLBACK_BYTES = 256 * 1024;
/** A client this far behind stops the shell's output until it catches up. */
const CLIENT_HIGH_WATER_BYTES = 1024 * 1024;

export interface PtyClient {
  sendData(data: Buffer): void;
  sendControl(message: Record<string, unknown>): void;
  close(code: number, reason: string): void;
  bufferedBytes(): number;
}

export interface OpenPtyOptions {
  userId: string;
  sandboxId: string;
  reconnectId: string;
  cols: number;
  rows: number;
  agent: AgentConnection;
}

class PtySession {
  readonly clients = new Set<PtyClient>();
  private scrollback: Buffer[] = [];
  private scrollbackBytes = 0;
  private detachTimer: NodeJS.Timeout | undefined;
  private resumeTimer: NodeJS.Timeout | undefined;
  exited = false;

  constructor(
    readonly key: string,
    readonly sandboxId: string,
    readonly pty: PtyProcess,
    private readonly graceMs: number,
    private readonly onGone: (session: PtySession) => void,
  ) {
    pty.output.on("data", (chunk: Buffer) => this.broadcast(chunk));
    pty.output.on("error", () => undefined);
    void pty.exited.then((exit) => {
      this.exited = true;
      for (const client of this.clients) {
        client.sendControl({ type: "exit", ...exit });
        client.close(1000, "shell exited");
      }
      this.clients.clear();
      this.dispose();
    });
  }

  attach(client: PtyClient): void {
    if (this.detachTimer) clearTimeout(this.detachTimer);
    this.detachTimer = undefined;
    this.clients.add(client);
    if (this.scrollbackBytes > 0) client.sendData(Buffer.concat(this.scrollback));
  }

  detach(client: PtyClient): void {
    this.clients.delete(client);
    if (this.clients.size > 0 || this.exited) return;
    this.detachTimer = setTimeout(() => {
      this.pty.kill("SIGHUP");
      this.dispose();
    }, this.graceMs);
    this.detachTimer.unref();
  }

  private broadcast(chunk: Buffer): void {
    this.scrollback.push(chunk);
    this.scrollbackBytes += chunk.length;
    while (this.scrollbackBytes > SCROLLBACK_BYTES && this.scrollback.length > 1) {
      const dropped = this.scrollback.shift();
      this.scrollbackBytes -= dropped?.length ?? 0;
    }
    let behind = false;
    for (const client of this.clients) {
      client.sendData(chunk);
      if (client.bufferedBytes() > CLIENT_HIGH_WATER_BYTES) behind = true;
    }
    if (behind) this.pauseUntilClientsCatchUp();
  }

  private pauseUntilClientsCatchUp(): void {
    if (this.resumeTimer) return;
    this.pty.output.pause();
    this.resumeTimer = setInterval(() => {
      const stillBehind = [...this.clients].some((c) => c.bufferedBytes() > CLIENT_HIGH_WATER_BYTES / 2);
      if (stillBehind) return;
      clearInterval(this.resumeTimer);
      this.resumeTimer = undefined;
      this.pty.output.resume();
    }, 20);
  }

  dispose(): void {
    if (this.detachTimer) clearTimeout(this.detachTimer);
    if (this.resumeTimer) clearInterval(this.resumeTimer);
    this.onGone(this);
  }
}

export class PtySessions {
  private readonly sessions = new Map<string, PtySession>();

  constructor(
    private readonly graceMs: number,
    private readonly log: Logger,
  ) {}

  /** Reattaches to the session named by the reconnect id, or starts a new shell under it. */
  async attach(
    options: OpenPtyOptions,
    client: PtyClient,
  ): Promise<{ reattached: boolean; session: PtySession }> {
    const key = `${options.userId}/${options.sandboxId}/${options.reconnectId}`;
    let session = this.sessions.get(key);
    const reattached = session !== undefined && !session.exited;
    if (!session || session.exited) {
      const pty = await options.agent.openPty({ cols: options.cols, rows: options.rows });
      session = new PtySession(key, options.sandboxId, pty, this.graceMs, (gone) => {
        if (this.sessions.get(gone.key) === gone) this.sessions.delete(gone.key);
      });
      this.sessions.set(key, session);
      this.log.info({ sandboxId: options.sandboxId }, "terminal session started");
    } else {
      session.pty.resize(options.cols, options.rows);
    }
    session.attach(client);
    return { reattached, session };
  }

  /** Ends every terminal of a sandbox (it is being destroyed). */
  closeSandbox(sandboxId: string): void {
    for (const session of this.sessions.values()) {
      if (session.sandboxId !== sandboxId) continue;
      session.pty.kill("SIGKILL");
      session.dispose();
    }
  }

  closeAll(): void {
    for (const session of [...this.sessions.values()]) {
      session.pty.kill("SIGKILL");
      session.dispose();
    }
  }
}

export type { PtySession };
