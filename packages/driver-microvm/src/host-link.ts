/**
 * The host's end of the link to a microVM's agent (see link-protocol.ts): one connection to the
 * VM's virtio-serial socket, held by the server process, over which every AgentConnection is
 * a channel. No process of Polydev's own per sandbox.
 */
import { randomBytes } from "node:crypto";
import { connect as connectSocket, type Socket } from "node:net";
import { Duplex } from "node:stream";
import type { ControlMessage } from "@polydev/agent";
import { ChannelSocket, connectAgent, Mux } from "@polydev/agent";
import type { AgentConnection } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { resetMarker } from "./link-protocol.js";

/** Bytes before the marker are the previous host's: a guest that never sends it is cut off. */
const MAX_SKIPPED_BYTES = 16 * 1024 * 1024;

/**
 * The link's byte stream over the VM's socket, which it outlives across a hibernate: the socket
 * of the saved VM drains and goes, the restored VM's socket takes its place, and the multiplexer
 * above (with every open agent connection) never notices. Before an attachment's marker (a
 * reset), everything read is the previous host's and dropped.
 */
class LinkTransport extends Duplex {
  private socket: Socket | undefined;
  private marker: Buffer | undefined;
  private scan = Buffer.alloc(0);
  private skipped = 0;
  /** Writes kept while no socket may take them (between a hibernate's sync and the resume). */
  private held: Buffer[] = [];
  private holding = false;
  private holdAfterNext = false;
  private detaching: (() => void) | undefined;

  constructor(private readonly onUnsyncedData: () => void) {
    super();
  }

  use(socket: Socket, marker: Buffer | undefined): void {
    this.socket = socket;
    this.marker = marker;
    this.scan = Buffer.alloc(0);
    this.skipped = 0;
    socket.on("data", (chunk: Buffer) => {
      if (this.socket === socket) this.receive(chunk);
    });
    socket.on("error", () => socket.destroy());
    socket.once("close", () => {
      if (this.socket !== socket) return;
      const detached = this.detaching;
      if (detached !== undefined) {
        this.detaching = undefined;
        this.socket = undefined;
        detached();
      } else this.destroy();
    });
    if (!this.holding) this.flush();
  }

  /** The next write goes out, every later one is held (see AgentLink.quiesce). */
  holdAfterNextWrite(): void {
    this.holdAfterNext = true;
  }

  /** Resolves once the current socket has closed (its last bytes read); the stream lives on. */
  detach(): Promise<void> {
    const socket = this.socket;
    if (socket === undefined || socket.destroyed) {
      this.socket = undefined;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.detaching = resolve;
    });
  }

  release(): void {
    this.holding = false;
    this.flush();
  }

  private flush(): void {
    const socket = this.socket;
    if (socket === undefined) return;
    for (const chunk of this.held) socket.write(chunk);
    this.held = [];
  }

  private receive(chunk: Buffer): void {
    if (this.marker === undefined) {
      this.push(chunk);
      return;
    }
    this.skipped += chunk.length;
    this.scan = Buffer.concat([this.scan, chunk]);
    const at = this.scan.indexOf(this.marker);
    if (at < 0) {
      this.scan = this.scan.subarray(Math.max(0, this.scan.length - this.marker.length));
      if (this.skipped > MAX_SKIPPED_BYTES)
        this.destroy(new Error("the guest never answered the link reset"));
      else this.onUnsyncedData();
      return;
    }
    const rest = this.scan.subarray(at + this.marker.length);
    this.marker = undefined;
    this.scan = Buffer.alloc(0);
    if (rest.length > 0) this.push(rest);
  }

  override _read(): void {
    // Pushed as it arrives; the agent protocol's windows bound it.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.holding || this.socket === undefined) {
      this.held.push(chunk);
      callback();
      return;
    }
    this.socket.write(chunk);
    if (this.holdAfterNext) {
      this.holdAfterNext = false;
      this.holding = true;
    }
    callback();
  }

  override _final(callback: () => void): void {
    this.socket?.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket?.destroy();
    callback(error);
  }
}

function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectSocket(path);
    socket.once("error", (error) =>
      reject(new PolydevError("sandbox_not_running", `the VM's agent socket: ${error.message}`)),
    );
    socket.once("connect", () => {
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}

export interface LinkHello {
  activated: boolean;
}

export class AgentLink {
  private nextRequest = 1;
  private readonly pending = new Map<
    number,
    { resolve(value: ControlMessage): void; reject(error: Error): void }
  >();
  private closedError: Error | undefined;
  private readonly closeListeners = new Set<() => void>();

  private constructor(
    private readonly mux: Mux,
    private readonly transport: LinkTransport,
    readonly hello: LinkHello,
  ) {}

  /**
   * Connects to the VM's agent socket and resets the guest's side. Resolves on the guest's
   * hello after the marker: the agent is there and answering.
   */
  static attach(
    socketPath: string,
    options: { signal?: AbortSignal; timeoutMs: number },
  ): Promise<AgentLink> {
    const nonce = randomBytes(12).toString("hex");
    const deadline = AbortSignal.timeout(options.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    return new Promise((resolve, reject) => {
      let link: AgentLink | undefined;
      let settled = false;
      const fail = (error: Error): void => {
        if (!settled) {
          settled = true;
          signal.removeEventListener("abort", onAbort);
          reject(error);
        }
        transport.destroy();
      };
      const onAbort = (): void =>
        fail(new PolydevError("timeout", `the VM's agent did not answer within ${options.timeoutMs} ms`));
      signal.addEventListener("abort", onAbort, { once: true });
      // Sent again whenever bytes of an older session arrive: a guest that had not yet opened
      // its port when the first one came never saw it (the guest ignores repeats).
      const sendReset = (): void => mux.connectionControl({ type: "reset", nonce });
      const transport = new LinkTransport(() => sendReset());
      transport.on("error", () => undefined);
      const mux: Mux = new Mux(
        transport,
        {
          onHello: (message) => {
            if (settled) return;
            settled = true;
            signal.removeEventListener("abort", onAbort);
            link = new AgentLink(mux, transport, { activated: message.activated === true });
            resolve(link);
          },
          // The guest opens no channels towards the host.
          onOpen: (channel) => channel.close(),
          onConnectionControl: (message) => link?.answer(message),
          onClose: (error) => {
            link?.shut(error ?? new Error("the link to the VM's agent closed"));
            fail(new PolydevError("sandbox_not_running", "the VM's agent socket closed"));
          },
        },
        "client",
      );
      connectUnix(socketPath).then(
        (socket) => {
          transport.use(socket, resetMarker(nonce));
          sendReset();
        },
        (error: Error) => fail(error),
      );
    });
  }

  /**
   * Before a hibernate: every byte sent so far has been read by the guest once this resolves,
   * and what callers send from now on waits for `resumeOn`.
   */
  async quiesce(): Promise<void> {
    this.transport.holdAfterNextWrite();
    await this.request({ type: "sync" });
  }

  /** After the VM was saved and its process ended: the old socket has been read to its end. */
  detach(): Promise<void> {
    return this.transport.detach();
  }

  /** The restored VM's socket under the same multiplexer; held writes go out. */
  async resumeOn(socketPath: string): Promise<void> {
    const socket = await connectUnix(socketPath);
    this.transport.use(socket, undefined);
    this.transport.release();
  }

  get alive(): boolean {
    return this.closedError === undefined && this.mux.alive;
  }

  onClose(listener: () => void): void {
    if (this.closedError) listener();
    else this.closeListeners.add(listener);
  }

  /** A new, independent agent connection over the link. */
  connect(signal?: AbortSignal): Promise<AgentConnection> {
    if (!this.alive) {
      return Promise.reject(new PolydevError("sandbox_not_running", "the link to the VM's agent is closed"));
    }
    const channel = this.mux.open({ type: "connection" });
    return connectAgent(new ChannelSocket(channel, "client"), signal ? { signal } : {});
  }

  request(request: ControlMessage, timeoutMs = 30_000): Promise<ControlMessage> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextRequest++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new PolydevError("timeout", `the VM's agent did not answer ${request.type} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.mux.connectionControl({ type: "request", id, request });
    });
  }

  close(): void {
    this.mux.close();
  }

  private answer(message: ControlMessage): void {
    if (message.type !== "response" || typeof message.id !== "number") return;
    const waiter = this.pending.get(message.id);
    if (waiter === undefined) return;
    this.pending.delete(message.id);
    const response = message.response;
    if (
      message.ok === true &&
      typeof response === "object" &&
      response !== null &&
      !Array.isArray(response)
    ) {
      const type = "type" in response ? String(response.type) : "";
      waiter.resolve({ ...response, type });
    } else {
      waiter.reject(
        new PolydevError(
          "sandbox_failed",
          `the VM's agent: ${typeof message.message === "string" ? message.message : "failed"}`,
        ),
      );
    }
  }

  private shut(error: Error): void {
    if (this.closedError) return;
    this.closedError = new PolydevError("sandbox_not_running", error.message);
    for (const waiter of this.pending.values()) waiter.reject(this.closedError);
    this.pending.clear();
    for (const listener of this.closeListeners) listener();
  }
}
