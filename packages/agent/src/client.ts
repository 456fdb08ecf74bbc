/** The calling side: implements the core `AgentConnection` over a multiplexed stream. */
import type { Duplex, Readable } from "node:stream";
import type {
  AgentConnection,
  AgentHello,
  AttachOptions,
  BackgroundProcessInfo,
  ExecProcess,
  ExecRequest,
  ExitInfo,
  FileEntry,
  FileWatchEvent,
  PtyProcess,
  PtyRequest,
} from "@polydev/core";
import { AGENT_PROTOCOL_VERSION, PolydevError } from "@polydev/core";
import type { Channel, Json } from "./mux.js";
import { Mux } from "./mux.js";
import { Stream } from "./streams.js";

function errorFrom(message: Json): PolydevError {
  const code = typeof message.code === "string" ? message.code : "internal";
  const text = typeof message.message === "string" ? message.message : "agent error";
  // Codes come from our own agent; an unknown one still becomes a well-formed error.
  return new PolydevError(code in CODES ? (code as keyof typeof CODES) : "internal", text);
}
const CODES = {
  invalid_request: 1,
  path_outside_home: 1,
  not_found: 1,
  conflict: 1,
  process_not_running: 1,
  command_failed: 1,
  internal: 1,
  sandbox_not_running: 1,
  payload_too_large: 1,
} as const;

const closedError = (): PolydevError =>
  new PolydevError("sandbox_not_running", "the connection to the sandbox's agent closed");

/** Resolves on the first `started`/`result`, rejects on `error` or an early close. */
function firstAnswer(channel: Channel, signal?: AbortSignal): Promise<Json> {
  return new Promise((resolve, reject) => {
    const onControl = (message: Json): void => {
      if (message.type === "error") done(() => reject(errorFrom(message)));
      else if (message.type === "result" || message.type === "started") done(() => resolve(message));
    };
    const onClose = (): void => done(() => reject(closedError()));
    const onAbort = (): void => {
      channel.close();
      done(() => reject(new PolydevError("timeout", "the agent call was aborted")));
    };
    const done = (settle: () => void): void => {
      channel.off("control", onControl);
      channel.off("close", onClose);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    channel.on("control", onControl);
    channel.once("close", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function exitOf(channel: Channel): Promise<ExitInfo> {
  return new Promise((resolve, reject) => {
    channel.on("control", (message: Json) => {
      if (message.type === "exit") {
        resolve({
          exitCode: typeof message.exitCode === "number" ? message.exitCode : null,
          signal: typeof message.signal === "string" ? message.signal : null,
          timedOut: message.timedOut === true,
          durationMs: typeof message.durationMs === "number" ? message.durationMs : 0,
        });
      } else if (message.type === "error") reject(errorFrom(message));
    });
    channel.once("close", () => reject(closedError()));
  });
}

export class AgentClient implements AgentConnection {
  constructor(
    private readonly mux: Mux,
    readonly hello: AgentHello,
  ) {}

  private async call<T>(request: Json, signal?: AbortSignal): Promise<T> {
    if (!this.mux.alive) throw closedError();
    const answer = await firstAnswer(this.mux.open(request), signal);
    return answer.value as T;
  }

  async ping(signal?: AbortSignal): Promise<number> {
    const started = performance.now();
    await this.call({ op: "ping" }, signal);
    return performance.now() - started;
  }

  async exec(request: ExecRequest, signal?: AbortSignal): Promise<ExecProcess> {
    if (!this.mux.alive) throw closedError();
    const channel = this.mux.open({ op: "exec", ...request });
    const exited = exitOf(channel);
    exited.catch(() => undefined);
    await firstAnswer(channel, signal);
    signal?.addEventListener("abort", () => channel.sendControl({ type: "signal", signal: "SIGKILL" }), {
      once: true,
    });
    return {
      stdout: channel.readable(Stream.stdout),
      stderr: channel.readable(Stream.stderr),
      stdin: channel.writable(Stream.stdin),
      exited,
      kill: (sig = "SIGTERM") => channel.sendControl({ type: "signal", signal: sig }),
    };
  }

  async openPty(request: PtyRequest, signal?: AbortSignal): Promise<PtyProcess> {
    if (!this.mux.alive) throw closedError();
    const channel = this.mux.open({ op: "pty", ...request });
    const exited = exitOf(channel);
    exited.catch(() => undefined);
    await firstAnswer(channel, signal);
    const input = channel.writable(Stream.stdin);
    return {
      output: channel.readable(Stream.stdout),
      write: (data) => {
        input.write(typeof data === "string" ? Buffer.from(data) : data);
      },
      resize: (cols, rows) => channel.sendControl({ type: "resize", cols, rows }),
      kill: (sig = "SIGHUP") => {
        channel.sendControl({ type: "signal", signal: sig });
        if (sig === "SIGKILL") channel.close();
      },
      exited,
    };
  }

  startBackground(
    request: { argv: string[]; cwd?: string; env?: Record<string, string> },
    signal?: AbortSignal,
  ) {
    return this.call<BackgroundProcessInfo>({ op: "bg.start", ...request }, signal);
  }

  listBackground(signal?: AbortSignal): Promise<BackgroundProcessInfo[]> {
    return this.call({ op: "bg.list" }, signal);
  }

  getBackground(id: string, signal?: AbortSignal): Promise<BackgroundProcessInfo> {
    return this.call({ op: "bg.get", id }, signal);
  }

  async signalBackground(id: string, signal: NodeJS.Signals): Promise<void> {
    await this.call({ op: "bg.signal", id, signal });
  }

  async attachBackground(id: string, options: AttachOptions = {}): Promise<Readable> {
    return this.openStream(
      { op: "bg.attach", id, fromOffset: options.fromOffset ?? 0, follow: options.follow ?? true },
      options.signal,
    );
  }

  private async openStream(request: Json, signal?: AbortSignal): Promise<Readable> {
    if (!this.mux.alive) throw closedError();
    const channel = this.mux.open(request);
    await firstAnswer(channel, signal);
    const output = channel.readable(Stream.stdout);
    signal?.addEventListener("abort", () => channel.close(), { once: true });
    channel.on("control", (message: Json) => {
      if (message.type === "error") output.destroy(errorFrom(message));
    });
    return output;
  }

  readonly files = {
    stat: (path: string, signal?: AbortSignal): Promise<FileEntry> =>
      this.call({ op: "files.stat", path }, signal),
    list: (path: string, signal?: AbortSignal): Promise<FileEntry[]> =>
      this.call({ op: "files.list", path }, signal),
    read: (path: string, signal?: AbortSignal): Promise<Readable> =>
      this.openStream({ op: "files.read", path }, signal),
    write: async (path: string, data: Readable, options: { mode?: number; signal?: AbortSignal } = {}) => {
      if (!this.mux.alive) throw closedError();
      const channel = this.mux.open({ op: "files.write", path, mode: options.mode });
      const answer = firstAnswer(channel, options.signal);
      const sink = channel.writable(Stream.stdin);
      data.pipe(sink);
      data.once("error", () => channel.close());
      const result = await answer.finally(() => data.unpipe(sink));
      return result.value as { sizeBytes: number };
    },
    mkdir: async (path: string, options: { parents?: boolean; signal?: AbortSignal } = {}) => {
      await this.call({ op: "files.mkdir", path, parents: options.parents ?? true }, options.signal);
    },
    remove: async (path: string, options: { recursive?: boolean; signal?: AbortSignal } = {}) => {
      await this.call({ op: "files.remove", path, recursive: options.recursive ?? false }, options.signal);
    },
    watch: (path: string, signal: AbortSignal): AsyncIterable<FileWatchEvent> => this.watch(path, signal),
  };

  private async *watch(path: string, signal: AbortSignal): AsyncGenerator<FileWatchEvent> {
    const channel = this.mux.open({ op: "files.watch", path });
    const queue: FileWatchEvent[] = [];
    let wake: (() => void) | undefined;
    let failure: PolydevError | undefined;
    let ended = false;
    channel.on("control", (message: Json) => {
      if (message.type === "event") {
        queue.push({ kind: message.kind === "change" ? "change" : "rename", path: String(message.path) });
      } else if (message.type === "error") failure = errorFrom(message);
      wake?.();
    });
    channel.once("close", () => {
      ended = true;
      wake?.();
    });
    const stop = (): void => channel.close();
    signal.addEventListener("abort", stop, { once: true });
    try {
      while (!signal.aborted) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (failure) throw failure;
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", stop);
      channel.close();
    }
  }

  async close(): Promise<void> {
    this.mux.close();
  }
}

/** Connects over a stream: waits for the agent's hello and checks the protocol version. */
export function connectAgent(
  stream: Duplex,
  options: { signal?: AbortSignal; helloTimeoutMs?: number } = {},
): Promise<AgentConnection> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      mux.close();
      reject(new PolydevError("timeout", "the sandbox's agent did not say hello in time"));
    }, options.helloTimeoutMs ?? 10_000);
    const mux: Mux = new Mux(
      stream,
      {
        onHello: (hello) => {
          clearTimeout(timer);
          const version = typeof hello.protocolVersion === "number" ? hello.protocolVersion : -1;
          if (version !== AGENT_PROTOCOL_VERSION) {
            setImmediate(() => mux.close());
            reject(
              new PolydevError(
                "driver_unavailable",
                `the sandbox's agent speaks protocol ${version}, this server speaks ${AGENT_PROTOCOL_VERSION}; upgrade the agent`,
              ),
            );
            return;
          }
          resolve(
            new AgentClient(mux, {
              protocolVersion: version,
              agentVersion: String(hello.agentVersion ?? "unknown"),
              capabilities: Array.isArray(hello.capabilities) ? hello.capabilities.map(String) : [],
            }),
          );
        },
        onClose: (error) => {
          clearTimeout(timer);
          reject(error ?? closedError());
        },
      },
      "client",
    );
    options.signal?.addEventListener("abort", () => mux.close(), { once: true });
  });
}
