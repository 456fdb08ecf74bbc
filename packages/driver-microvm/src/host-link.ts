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
 * The socket with everything before this attachment's marker dropped: what the Mux reads is the
 * guest's fresh session only.
 */
class MarkedStream extends Duplex {
  private synced = false;
  private scan = Buffer.alloc(0);
  private skipped = 0;

  constructor(
    private readonly socket: Socket,
    private readonly marker: Buffer,
    private readonly onUnsyncedData: () => void,
  ) {
    super();
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.once("end", () => this.push(null));
    socket.once("close", () => this.destroy());
    socket.on("error", (error) => this.destroy(error));
  }

  private receive(chunk: Buffer): void {
    if (this.synced) {
      if (!this.push(chunk)) this.socket.pause();
      return;
    }
    this.skipped += chunk.length;
    this.scan = Buffer.concat([this.scan, chunk]);
    const at = this.scan.indexOf(this.marker);
    if (at < 0) {
      this.scan = this.scan.subarray(Math.max(0, this.scan.length - this.marker.length));
      if (this.skipped > MAX_SKIPPED_BYTES) this.destroy(new Error("the guest never answered the link reset"));
      else this.onUnsyncedData();
      return;
    }
    this.synced = true;
    const rest = this.scan.subarray(at + this.marker.length);
    this.scan = Buffer.alloc(0);
    if (rest.length > 0) this.push(rest);
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, (error) => callback(error ?? null));
  }

  override _final(callback: () => void): void {
    this.socket.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}

export interface LinkHello {
  activated: boolean;
}

export class AgentLink {
  private nextRequest = 1;
  private readonly pending = new Map<number, { resolve(value: ControlMessage): void; reject(error: Error): void }>();
  private closedError: Error | undefined;
  private readonly closeListeners = new Set<() => void>();

  private constructor(
    private readonly mux: Mux,
    readonly hello: LinkHello,
  ) {}

  /**
   * Connects to the VM's agent socket and resets the guest's side. Resolves on the guest's
   * hello after the marker: the agent is there and answering.
   */
  static attach(socketPath: string, options: { signal?: AbortSignal; timeoutMs: number }): Promise<AgentLink> {
    const nonce = randomBytes(12).toString("hex");
    const deadline = AbortSignal.timeout(options.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    return new Promise((resolve, reject) => {
      const socket = connectSocket(socketPath);
      let link: AgentLink | undefined;
      let settled = false;
      const fail = (error: Error): void => {
        if (!settled) {
          settled = true;
          reject(error);
        }
        socket.destroy();
      };
      const onAbort = (): void =>
        fail(new PolydevError("timeout", `the VM's agent did not answer within ${options.timeoutMs} ms`));
      signal.addEventListener("abort", onAbort, { once: true });
      socket.once("error", (error) =>
        fail(new PolydevError("sandbox_not_running", `the VM's agent socket: ${error.message}`)),
      );
      const sendReset = (): void => mux.connectionControl({ type: "reset", nonce });
      const stream = new MarkedStream(socket, resetMarker(nonce), () => sendReset());
      stream.on("error", () => undefined);
      const mux: Mux = new Mux(
        stream,
        {
          onHello: (message) => {
            if (settled) return;
            settled = true;
            signal.removeEventListener("abort", onAbort);
            link = new AgentLink(mux, { activated: message.activated === true });
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
      socket.once("connect", () => sendReset());
    });
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
        reject(new PolydevError("timeout", `the VM's agent did not answer ${request.type} within ${timeoutMs} ms`));
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
    if (message.ok === true && typeof response === "object" && response !== null && !Array.isArray(response)) {
      const type = "type" in response ? String(response.type) : "";
      waiter.resolve({ ...response, type });
    } else {
      waiter.reject(
        new PolydevError("sandbox_failed", `the VM's agent: ${typeof message.message === "string" ? message.message : "failed"}`),
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
