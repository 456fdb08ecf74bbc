/**
 * Terminal sessions that outlive their WebSocket. A client names its session with a reconnect id
 * it makes itself; connecting again with the same id reattaches to the same shell and replays
 * the recent screen output. A session without clients is killed after a grace period.
 */
import type { AgentConnection, PtyProcess } from "@polydev/core";
import { isPolydevError } from "@polydev/core";
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
  /** Who the shell runs as (default: the sandbox's default user). */
  user?: string | undefined;
}

/** How a terminal's clients are told it ended, and the WebSocket close that follows. */
interface Ending {
  control: Record<string, unknown>;
  code: number;
  reason: string;
}

class PtySession {
  readonly clients = new Set<PtyClient>();
  private scrollback: Buffer[] = [];
  private scrollbackBytes = 0;
  private detachTimer: NodeJS.Timeout | undefined;
  private resumeTimer: NodeJS.Timeout | undefined;
  /** Set once the shell exited or its sandbox went away: nothing reaches it any more. */
  ended = false;

  constructor(
    readonly key: string,
    readonly sandboxId: string,
    readonly pty: PtyProcess,
    private readonly graceMs: number,
    private readonly log: Logger,
    private readonly onGone: (session: PtySession) => void,
  ) {
    pty.output.on("data", (chunk: Buffer) => this.broadcast(chunk));
    pty.output.on("error", () => undefined);
    // `exited` rejects when the agent connection closes under the shell (the sandbox was
    // destroyed, its init died): that ends this terminal, never the server.
    pty.exited
      .then(
        (exit) => this.end({ control: { type: "exit", ...exit }, code: 1000, reason: "shell exited" }),
        (error: unknown) => {
          const { code, message } = describe(error);
          this.end({ control: { type: "error", code, message }, code: 1011, reason: closeReason(message) });
        },
      )
      .catch((error: unknown) => this.log.warn({ err: error, sandboxId }, "ending a terminal failed"));
  }

  attach(client: PtyClient): void {
    if (this.detachTimer) clearTimeout(this.detachTimer);
    this.detachTimer = undefined;
    this.clients.add(client);
    if (this.scrollbackBytes > 0) client.sendData(Buffer.concat(this.scrollback));
  }

  detach(client: PtyClient): void {
    this.clients.delete(client);
    if (this.clients.size > 0 || this.ended) return;
    if (this.detachTimer) clearTimeout(this.detachTimer);
    this.detachTimer = setTimeout(() => {
      this.kill("SIGHUP");
      this.dispose();
    }, this.graceMs);
    this.detachTimer.unref();
  }

  write(data: string | Uint8Array): void {
    if (!this.ended) this.pty.write(data);
  }

  resize(cols: number, rows: number): void {
    if (!this.ended) this.pty.resize(cols, rows);
  }

  /** Signals the shell; a shell whose channel is already gone has nothing left to signal. */
  kill(signal: NodeJS.Signals): void {
    try {
      this.pty.kill(signal);
    } catch (error) {
      this.log.debug({ err: error, sandboxId: this.sandboxId }, "could not signal a terminal");
    }
  }

  /** Tells every client why the terminal ended and closes it; later calls do nothing. */
  end(ending: Ending): void {
    if (this.ended) return;
    this.ended = true;
    for (const client of this.clients) {
      try {
        client.sendControl(ending.control);
        client.close(ending.code, ending.reason);
      } catch (error) {
        this.log.debug({ err: error, sandboxId: this.sandboxId }, "could not close a terminal client");
      }
    }
    this.clients.clear();
    this.dispose();
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
    this.detachTimer = undefined;
    this.resumeTimer = undefined;
    this.onGone(this);
  }
}

function describe(error: unknown): { code: string; message: string } {
  if (isPolydevError(error)) return { code: error.code, message: error.message };
  return { code: "internal", message: "the terminal failed" };
}

/** A WebSocket close reason is at most 123 bytes. */
function closeReason(message: string): string {
  const reason = Buffer.from(message, "utf8");
  return reason.length <= 123 ? message : `${reason.subarray(0, 120).toString("utf8")}...`;
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
    const reattached = session !== undefined && !session.ended;
    if (!session || session.ended) {
      const pty = await options.agent.openPty({
        cols: options.cols,
        rows: options.rows,
        ...(options.user === undefined ? {} : { user: options.user }),
      });
      session = new PtySession(key, options.sandboxId, pty, this.graceMs, this.log, (gone) => {
        if (this.sessions.get(gone.key) === gone) this.sessions.delete(gone.key);
      });
      this.sessions.set(key, session);
      this.log.info({ sandboxId: options.sandboxId }, "terminal session started");
    } else {
      session.resize(options.cols, options.rows);
    }
    session.attach(client);
    return { reattached, session };
  }

  /** Ends every terminal of a sandbox (it is being destroyed): its clients are told and closed. */
  closeSandbox(sandboxId: string): void {
    for (const session of [...this.sessions.values()]) {
      if (session.sandboxId !== sandboxId) continue;
      session.kill("SIGKILL");
      session.end({
        control: { type: "error", code: "sandbox_not_running", message: `sandbox ${sandboxId} was stopped` },
        code: 1001,
        reason: "the sandbox was stopped",
      });
    }
  }

  /** The server is shutting down: terminals end, their shells with them. */
  closeAll(): void {
    for (const session of [...this.sessions.values()]) {
      session.kill("SIGKILL");
      session.end({
        control: { type: "error", code: "internal", message: "the server is shutting down" },
        code: 1001,
        reason: "the server is shutting down",
      });
    }
  }
}

export type { PtySession };
