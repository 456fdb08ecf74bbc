/** The calling side: the core `AgentConnection` over a multiplexed stream. */
import type { Duplex, Readable } from "node:stream";
import type {
  AgentConnection,
  AgentFiles,
  AgentHello,
  AttachOptions,
  BackgroundProcessInfo,
  BackgroundRequest,
  EgressDestination,
  ExecProcess,
  ExecRequest,
  ForwardedPort,
  PolydevError,
  PtyProcess,
  PtyRequest,
} from "@polydev/core";
import type { Channel, ControlMessage } from "./channel.js";
import { StreamId } from "./channel.js";
import { ChannelSocket } from "./channel-socket.js";
import { exitOf, firstAnswer, untilClosed } from "./client-answers.js";
import type { ClientConnection } from "./client-connection.js";
import { openOutput } from "./client-connection.js";
import { ClientFiles } from "./client-files.js";
import { acceptedDestination } from "./forward-operations.js";
import type { Mux } from "./mux.js";
import { aborted } from "./wire-error.js";

export class AgentClient implements AgentConnection {
  readonly files: AgentFiles;
  private readonly connection: ClientConnection;

  constructor(
    private readonly mux: Mux,
    readonly hello: AgentHello,
    closedError: () => PolydevError,
    private readonly forwardListeners: Map<number, (channel: Channel, request: ControlMessage) => void>,
    readonly closed: Promise<void>,
  ) {
    this.connection = {
      open: (request, signal) => {
        if (signal?.aborted) throw aborted(signal);
        if (!mux.alive) throw closedError();
        return mux.open(request);
      },
      closedError,
    };
    this.files = new ClientFiles(this.connection);
  }

  async ping(signal?: AbortSignal): Promise<number> {
    const startedAt = performance.now();
    await this.call({ type: "ping" }, signal);
    return performance.now() - startedAt;
  }

  async exec(request: ExecRequest, signal?: AbortSignal): Promise<ExecProcess> {
    const channel = this.connection.open(
      {
        type: "exec",
        argv: request.argv,
        cwd: request.cwd,
        env: request.env,
        timeoutMs: request.timeoutMs,
        user: request.user,
      },
      signal,
    );
    const exited = exitOf(channel, this.connection.closedError);
    await firstAnswer(channel, this.connection.closedError, signal);
    const kill = (killSignal: NodeJS.Signals = "SIGTERM"): void =>
      channel.control({ type: "signal", signal: killSignal });
    // The signal covers the whole call: aborting after the start kills the process.
    untilClosed(channel, signal, () => kill("SIGKILL"));
    return {
      stdout: channel.readable(StreamId.stdout),
      stderr: channel.readable(StreamId.stderr),
      stdin: channel.writable(StreamId.stdin),
      exited,
      kill,
    };
  }

  async openPty(request: PtyRequest, signal?: AbortSignal): Promise<PtyProcess> {
    const channel = this.connection.open(
      {
        type: "pty",
        argv: request.argv,
        cols: request.cols,
        rows: request.rows,
        cwd: request.cwd,
        env: request.env,
        user: request.user,
      },
      signal,
    );
    const exited = exitOf(channel, this.connection.closedError);
    await firstAnswer(channel, this.connection.closedError, signal);
    untilClosed(channel, signal, () => channel.close());
    const input = channel.writable(StreamId.stdin);
    return {
      output: channel.readable(StreamId.stdout),
      write: (data) => {
        input.write(typeof data === "string" ? Buffer.from(data, "utf8") : data);
      },
      resize: (cols, rows) => channel.control({ type: "resize", cols, rows }),
      kill: (killSignal = "SIGHUP") => channel.control({ type: "signal", signal: killSignal }),
      exited,
    };
  }

  startBackground(request: BackgroundRequest, signal?: AbortSignal): Promise<BackgroundProcessInfo> {
    return this.call(
      { type: "bg.start", argv: request.argv, cwd: request.cwd, env: request.env, user: request.user },
      signal,
    );
  }

  listBackground(signal?: AbortSignal): Promise<BackgroundProcessInfo[]> {
    return this.call({ type: "bg.list" }, signal);
  }

  getBackground(id: string, signal?: AbortSignal): Promise<BackgroundProcessInfo> {
    return this.call({ type: "bg.get", id }, signal);
  }

  async signalBackground(id: string, signal: NodeJS.Signals): Promise<void> {
    await this.call({ type: "bg.signal", id, signal });
  }

  attachBackground(id: string, options: AttachOptions = {}): Promise<Readable> {
    return openOutput(
      this.connection,
      { type: "bg.attach", id, fromOffset: options.fromOffset ?? 0, follow: options.follow ?? true },
      options.signal,
    );
  }

  async forwardIn(port: number, signal?: AbortSignal): Promise<Duplex> {
    const channel = this.connection.open({ type: "forward.in", port }, signal);
    await firstAnswer(channel, this.connection.closedError, signal);
    return new ChannelSocket(channel, "client");
  }

  forwardOut(
    port: number,
    onConnection: (socket: Duplex) => void,
    signal?: AbortSignal,
  ): Promise<ForwardedPort> {
    return this.listenVia(
      { type: "forward.out", port },
      (accepted) => onConnection(new ChannelSocket(accepted, "client")),
      signal,
    );
  }

  interceptEgress(
    onConnection: (socket: Duplex, destination: EgressDestination) => void,
    signal?: AbortSignal,
  ): Promise<ForwardedPort> {
    return this.listenVia(
      { type: "egress.intercept" },
      (accepted, request) => {
        const destination = acceptedDestination(request);
        // An agent that names no well-formed destination gets its connection closed, not routed.
        if (destination === undefined) accepted.close();
        else onConnection(new ChannelSocket(accepted, "client"), destination);
      },
      signal,
    );
  }

  /** Opens a listening operation; the agent's `forward.accepted` channels for it go to `deliver`. */
  private async listenVia(
    request: ControlMessage,
    deliver: (accepted: Channel, request: ControlMessage) => void,
    signal?: AbortSignal,
  ): Promise<ForwardedPort> {
    const channel = this.connection.open(request, signal);
    // Registered before the answer: a connection may arrive right behind it.
    this.forwardListeners.set(channel.id, deliver);
    const closed = new Promise<void>((resolve) =>
      channel.once("close", () => {
        this.forwardListeners.delete(channel.id);
        resolve();
      }),
    );
    await firstAnswer(channel, this.connection.closedError, signal);
    return { close: () => channel.close(), closed };
  }

  async close(): Promise<void> {
    this.mux.close();
  }

  private async call<T>(request: ControlMessage, signal?: AbortSignal): Promise<T> {
    const channel = this.connection.open(request, signal);
    const answer = await firstAnswer(channel, this.connection.closedError, signal);
    // The shape is the agent's contract for this operation (see PROTOCOL.md).
    return answer.value as T;
  }
}
