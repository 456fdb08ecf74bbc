/**
 * A host-wide mutual exclusion that a crash cannot leave held: a unix socket bound in the
 * abstract namespace exists exactly as long as the process that bound it, so there is no stale
 * lock file to judge and break (breaking one safely would itself need a lock). Only one process
 * can bind a name; the others retry until it closes or dies.
 *
 * Abstract names belong to a network namespace: every server sharing one lock must run in the
 * host's (a Polydev server always does; its sandboxes each have their own and cannot reach it).
 */
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

const RETRY_MS = 5;

export class HostLock {
  private readonly address: string;
  /** Holders within this process queue here first: binding twice would just fail and retry. */
  private tail: Promise<unknown> = Promise.resolve();

  /** `key` names what is locked (a directory, say); any string, hashed into the socket name. */
  constructor(key: string) {
    this.address = `\0polydev-lock-${createHash("sha256").update(key).digest("hex").slice(0, 32)}`;
  }

  /**
   * Runs `task` holding the lock. Gives up after `timeoutMs` (another process holds it that
   * long, or has squatted the name) and answers `{ locked: false }` without running `task`:
   * callers use the lock only to tidy up, never to make progress, so waiting forever is worse.
   */
  async with<T>(
    timeoutMs: number,
    task: () => T | Promise<T>,
  ): Promise<{ locked: true; value: T } | { locked: false }> {
    const run = this.tail.then(async () => {
      const server = await bind(this.address, Date.now() + timeoutMs);
      if (server === undefined) return { locked: false as const };
      try {
        return { locked: true as const, value: await task() };
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}

async function bind(address: string, deadline: number): Promise<Server | undefined> {
  for (;;) {
    const server = createServer();
    const bound = await new Promise<boolean>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "EADDRINUSE") resolve(false);
        else reject(error);
      });
      server.listen({ path: address, exclusive: true }, () => resolve(true));
    });
    if (bound) {
      // Never a reason to keep the process alive, and nobody is meant to connect.
      server.unref();
      server.on("connection", (socket) => socket.destroy());
      return server;
    }
    if (Date.now() >= deadline) return undefined;
    await delay(RETRY_MS);
  }
}
