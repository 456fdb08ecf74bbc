/**
 * A QMP client (QEMU's JSON control protocol over a unix socket): one command at a time in
 * flight per caller, answers matched by id, events passed to a listener. Our own ~60 lines
 * because no maintained npm QMP client exists; we need capabilities negotiation, `execute`
 * and events, nothing more.
 */
import { connect, type Socket } from "node:net";
import { PolydevError } from "@polydev/core";

/** A reply or an event larger than this is a broken QEMU: the line is refused, not buffered. */
const MAX_LINE_BYTES = 1024 * 1024;

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class QmpClient {
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private readonly listeners = new Set<(event: QmpEvent) => void>();
  private closedError: Error | undefined;
  private readonly closeListeners = new Set<() => void>();

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => this.receive(text));
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error("QMP connection closed")));
  }

  static connect(path: string, signal?: AbortSignal): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      // Only the connection's set-up is bounded by the signal, not the client's life.
      const onAbort = (): void => {
        socket.destroy(new Error("aborted"));
      };
      const onError = (error: Error): void => {
        signal?.removeEventListener("abort", onAbort);
        reject(error);
      };
      socket.once("error", onError);
      signal?.addEventListener("abort", onAbort, { once: true });
      socket.once("connect", () => {
        socket.off("error", onError);
        const client = new QmpClient(socket);
        // The greeting comes first; negotiation answers with {return: {}}.
        client.execute("qmp_capabilities").then(
          () => {
            signal?.removeEventListener("abort", onAbort);
            resolve(client);
          },
          (error: unknown) => {
            signal?.removeEventListener("abort", onAbort);
            reject(error);
          },
        );
      });
    });
  }

  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(
        `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`,
      );
    });
  }

  /** Called once the connection has ended: QEMU exited, or close() was called. */
  onClose(listener: () => void): void {
    if (this.closedError) listener();
    else this.closeListeners.add(listener);
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(text: string): void {
    this.buffer += text;
    if (this.buffer.length > MAX_LINE_BYTES && !this.buffer.includes("\n")) {
      this.fail(new Error("QMP sent an over-long line"));
      this.socket.destroy();
      return;
    }
    let newline = this.buffer.indexOf("\n");
    while (newline >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      newline = this.buffer.indexOf("\n");
      if (line.length === 0) continue;
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (typeof message.event === "string") {
        const event: QmpEvent = { event: message.event };
        if (typeof message.data === "object" && message.data !== null)
          event.data = message.data as Record<string, unknown>;
        for (const listener of this.listeners) listener(event);
        continue;
      }
      const id = typeof message.id === "number" ? message.id : undefined;
      const waiter = id === undefined ? undefined : this.pending.get(id);
      if (id === undefined || waiter === undefined) continue;
      this.pending.delete(id);
      if ("error" in message) {
        const error = message.error as { desc?: string } | undefined;
        waiter.reject(new PolydevError("sandbox_failed", `QEMU: ${error?.desc ?? "command failed"}`));
      } else waiter.resolve(message.return);
    }
  }

  private fail(error: Error): void {
    if (this.closedError) return;
    this.closedError = error;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    for (const listener of this.closeListeners) listener();
    this.closeListeners.clear();
  }
}
