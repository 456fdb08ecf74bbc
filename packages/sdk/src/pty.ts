/**
 * Interactive terminals: a WebSocket to `GET /v1/sandboxes/:id/pty`. Binary frames carry terminal
 * bytes both ways; text frames carry JSON control messages (`resize` in; `ready`, `exit`, `error`
 * out). The session outlives its socket on the server, so reopening with the same reconnect id
 * reattaches to the same shell and replays its recent screen.
 */
import type { PolydevApiError } from "./errors.js";
import { errorFromResponse } from "./errors.js";

/** What a PTY session needs of a WebSocket: the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: "error", listener: (event: unknown) => void): void;
}

/**
 * A WebSocket class. Browsers ignore the third argument (cookies carry the auth there); the `ws`
 * package takes `headers` in it, which is how Node sends the bearer key.
 */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: { headers?: Record<string, string> },
) => WebSocketLike;

export interface PtyOptions {
  /** Terminal width in columns; default 80. */
  cols?: number;
  /** Terminal height in rows; default 24. */
  rows?: number;
  /**
   * A client-made id (8–64 letters, digits, `_` or `-`); opening again with the same id reattaches
   * to the same shell. Default: a fresh random id (see `PtySession.reconnectId`).
   */
  reconnectId?: string;
  /**
   * Whether a reattach replays the shell's recent output; default true (a new page shows the
   * screen as it was). A client that still shows its screen after a dropped connection passes false.
   */
  replay?: boolean;
  /** Aborting closes the terminal (or stops the attempt to open it). */
  signal?: AbortSignal;
}

/** How the shell ended: its exit code, or the signal that killed it. */
export interface PtyExit {
  exitCode: number | null;
  signal: string | null;
}

/** What `Polydev` hands to `openPty`; not part of the public surface. */
export interface PtyTarget {
  baseUrl: string;
  sandboxId: string;
  apiKey?: string | undefined;
  WebSocket?: WebSocketConstructor | undefined;
  /** Asks the API why the socket failed, so a bad id throws the same class as any other call. */
  diagnose(): Promise<{ state: string }>;
}

const OPEN = 1;

/** One terminal attached to a shell in a sandbox. Created by `polydev.sandboxes.pty(...)`. */
export class PtySession {
  private readonly dataListeners = new Set<(data: Uint8Array) => void>();
  private readonly exitListeners = new Set<(exit: PtyExit) => void>();
  private readonly disconnectListeners = new Set<(reason: string) => void>();
  /** Output that arrived before anyone listened (the replayed screen comes before `ready`). */
  private pending: Uint8Array[] = [];
  private exit: PtyExit | undefined;
  private closedByUs = false;
  private readonly encoder = new TextEncoder();

  /** @internal */
  constructor(
    private readonly socket: WebSocketLike,
    /** The id to reopen this shell with after a dropped connection. */
    readonly reconnectId: string,
    /** True when this connection joined a shell that was already running. */
    readonly reattached: boolean,
  ) {}

  /**
   * Sends keystrokes (or any bytes) to the shell.
   * @example term.write("ls -la\r");
   */
  write(data: string | Uint8Array): void {
    if (this.socket.readyState !== OPEN) return;
    this.socket.send(typeof data === "string" ? this.encoder.encode(data) : data);
  }

  /**
   * Tells the shell the terminal's new size.
   * @example term.resize(process.stdout.columns, process.stdout.rows);
   */
  resize(cols: number, rows: number): void {
    if (this.socket.readyState !== OPEN) return;
    this.socket.send(JSON.stringify({ type: "resize", cols, rows }));
  }

  /**
   * Receives the shell's output; returns a function that stops listening.
   * @example const stop = term.onData((bytes) => process.stdout.write(bytes));
   */
  onData(listener: (data: Uint8Array) => void): () => void {
    this.dataListeners.add(listener);
    const pending = this.pending;
    this.pending = [];
    for (const chunk of pending) listener(chunk);
    return () => this.dataListeners.delete(listener);
  }

  /**
   * Called once when the shell exits (immediately if it already has).
   * @example term.onExit(({ exitCode }) => process.exit(exitCode ?? 1));
   */
  onExit(listener: (exit: PtyExit) => void): () => void {
    if (this.exit) listener(this.exit);
    else this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /**
   * Called when the connection drops while the shell still runs (not after `close()` or an exit):
   * reopen with the same `reconnectId` to carry on.
   * @example term.onDisconnect(() => polydev.sandboxes.pty(id, { reconnectId: term.reconnectId }));
   */
  onDisconnect(listener: (reason: string) => void): () => void {
    this.disconnectListeners.add(listener);
    return () => this.disconnectListeners.delete(listener);
  }

  /**
   * Closes this connection. The shell keeps running on the server for a grace period, so the same
   * `reconnectId` can still reattach; type `exit` in the shell to end it for good.
   * @example term.close();
   */
  close(): void {
    this.closedByUs = true;
    this.socket.close(1000, "client closed");
  }

  /** @internal */
  receive(data: unknown): void {
    if (typeof data === "string") {
      const message = parseControl(data);
      if (message?.type === "exit") {
        this.exit = {
          exitCode: typeof message.exitCode === "number" ? message.exitCode : null,
          signal: typeof message.signal === "string" ? message.signal : null,
        };
        for (const listener of this.exitListeners) listener(this.exit);
        this.exitListeners.clear();
      }
      return;
    }
    const bytes = toBytes(data);
    if (!bytes) return;
    if (this.dataListeners.size === 0) this.pending.push(bytes);
    for (const listener of this.dataListeners) listener(bytes);
  }

  /** @internal */
  dropped(reason: string): void {
    if (this.closedByUs || this.exit) return;
    for (const listener of this.disconnectListeners) listener(reason);
  }
}

/**
 * Opens a terminal; resolves once the server says the shell is ready. Use it through
 * `polydev.sandboxes.pty(...)`.
 */
export function openPty(target: PtyTarget, options: PtyOptions = {}): Promise<PtySession> {
  const WebSocketClass = target.WebSocket ?? globalWebSocket();
  if (!WebSocketClass)
    return Promise.reject(
      new Error("no WebSocket here: pass `WebSocket` (e.g. the `ws` package) in the Polydev options"),
    );
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  const query = new URLSearchParams({ cols: String(options.cols ?? 80), rows: String(options.rows ?? 24) });
  if (options.reconnectId) query.set("reconnect", options.reconnectId);
  const url = `${target.baseUrl.replace(/^http/, "ws")}/v1/sandboxes/${encodeURIComponent(target.sandboxId)}/pty?${query}`;
  const socket = target.apiKey
    ? new WebSocketClass(url, [], { headers: { authorization: `Bearer ${target.apiKey}` } })
    : new WebSocketClass(url);
  socket.binaryType = "arraybuffer";

  return new Promise<PtySession>((resolve, reject) => {
    let session: PtySession | undefined;
    let earlyData: unknown[] = [];
    let failure: PolydevApiError | undefined;
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener("abort", onAbort);
      reject(error);
    };
    const onAbort = (): void => {
      if (session) session.close();
      else {
        socket.close(1000, "aborted");
        fail(options.signal?.reason);
      }
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });

    socket.addEventListener("message", (event) => {
      if (session) {
        session.receive(event.data);
        return;
      }
      const message = typeof event.data === "string" ? parseControl(event.data) : undefined;
      if (message?.type === "ready") {
        const reconnectId = typeof message.reconnectId === "string" ? message.reconnectId : "";
        session = new PtySession(socket, reconnectId, message.reattached === true);
        // The server sends the replayed screen before `ready`, so everything before it is replay.
        if (options.replay !== false) for (const data of earlyData) session.receive(data);
        earlyData = [];
        settled = true;
        resolve(session);
      } else if (message?.type === "error") {
        failure = errorFromResponse(0, {
          error: {
            code: typeof message.code === "string" ? message.code : "pty_failed",
            message: typeof message.message === "string" ? message.message : "the terminal failed to start",
          },
        });
      } else earlyData.push(event.data);
    });
    socket.addEventListener("close", (event) => {
      options.signal?.removeEventListener("abort", onAbort);
      if (session) {
        session.dropped(event.reason || `connection closed (${event.code})`);
        return;
      }
      if (settled) return;
      if (failure) {
        fail(failure);
        return;
      }
      // The browser hides the HTTP answer of a refused upgrade; the API says the same thing plainly.
      target.diagnose().then(
        (sandbox) =>
          fail(
            sandbox.state === "running" || sandbox.state === "hibernated"
              ? errorFromResponse(0, {
                  error: {
                    code: "pty_failed",
                    message: `the terminal connection closed before it was ready (${event.code}${event.reason ? ` ${event.reason}` : ""})`,
                  },
                })
              : errorFromResponse(409, {
                  error: {
                    code: "sandbox_not_running",
                    message: `sandbox ${target.sandboxId} is ${sandbox.state}`,
                  },
                }),
          ),
        fail,
      );
    });
    // A failed socket also closes; the close handler decides what to report.
    socket.addEventListener("error", () => undefined);
  });
}

function globalWebSocket(): WebSocketConstructor | undefined {
  const candidate = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  return typeof candidate === "function" ? candidate : undefined;
}

function parseControl(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    // `ws` may hand over a fragmented message as a list of buffers.
    const parts = data.filter((part): part is Uint8Array => part instanceof Uint8Array);
    const joined = new Uint8Array(parts.reduce((total, part) => total + part.byteLength, 0));
    let offset = 0;
    for (const part of parts) {
      joined.set(part, offset);
      offset += part.byteLength;
    }
    return joined;
  }
  return undefined;
}
