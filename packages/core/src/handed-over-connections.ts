/**
 * The connection a driver's create opened alongside the sandbox's start, kept for its first
 * `connect`. A caller of create connects next (the server does so at once, to run the first
 * command), and a fresh connection's hello is a round trip through the Sentry (gvisor) or the
 * emulated guest (microvm) that create already paid. Each connection is handed out once, so connections stay independent; one nobody
 * takes is closed after a while, and one whose agent went away is dropped.
 */
import type { AgentConnection } from "./agent.js";

/** How long an untaken connection is kept: a create's caller connects within moments. */
const KEEP_MS = 10_000;

interface Kept {
  connection: AgentConnection;
  timer: NodeJS.Timeout;
}

export class HandedOverConnections {
  private readonly kept = new Map<string, Kept>();

  keep(sandboxId: string, connection: AgentConnection): void {
    this.drop(sandboxId);
    const timer = setTimeout(() => this.drop(sandboxId), KEEP_MS);
    // A kept connection never holds a process open.
    timer.unref();
    const kept = { connection, timer };
    this.kept.set(sandboxId, kept);
    connection.closed.then(() => {
      if (this.kept.get(sandboxId) === kept) {
        clearTimeout(timer);
        this.kept.delete(sandboxId);
      }
    });
  }

  /** The kept connection, now the caller's; undefined when there is none. */
  take(sandboxId: string): AgentConnection | undefined {
    const kept = this.kept.get(sandboxId);
    if (kept === undefined) return undefined;
    clearTimeout(kept.timer);
    this.kept.delete(sandboxId);
    return kept.connection;
  }

  /** Closes the kept connection, if any (its sandbox is going away, or nobody took it). */
  drop(sandboxId: string): void {
    this.take(sandboxId)
      ?.close()
      .catch(() => undefined);
  }
}
