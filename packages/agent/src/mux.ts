/**
 * Multiplexes channels over one reliable byte stream. Channel 0 belongs to the connection
 * itself (hello, connection-level errors); each side opens channels from its own half of the id
 * space (client odd, server even), so ids never collide and need no negotiation.
 */
import type { Duplex } from "node:stream";
import type { ChannelHost, ControlMessage } from "./channel.js";
import { Channel, parseControl } from "./channel.js";
import { ProtocolError } from "./flow-control.js";
import type { Frame } from "./frame.js";
import { encodeJsonFrame, FrameReader, FrameType } from "./frame.js";

export interface MuxHandlers {
  onHello?(hello: ControlMessage): void;
  /** A channel the peer opened; `request` is its open message. */
  onOpen?(channel: Channel, request: ControlMessage): void;
  /** A control message on channel 0 (the connection): errors that end the connection. */
  onConnectionControl?(message: ControlMessage): void;
  onClose?(error?: Error): void;
}

export type MuxSide = "client" | "server";

export class Mux implements ChannelHost {
  private readonly channels = new Map<number, Channel>();
  private readonly reader = new FrameReader();
  private nextId: number;
  private dead = false;

  constructor(
    private readonly stream: Duplex,
    private readonly handlers: MuxHandlers,
    private readonly side: MuxSide,
  ) {
    this.nextId = side === "client" ? 1 : 2;
    stream.on("data", (chunk: Buffer) => this.receive(chunk));
    stream.on("error", (error) => this.shutdown(error));
    stream.once("end", () => this.shutdown());
    stream.once("close", () => this.shutdown());
  }

  get alive(): boolean {
    return !this.dead;
  }

  hello(message: ControlMessage): void {
    this.send(encodeJsonFrame(0, FrameType.hello, message));
  }

  /** Reports a connection-level error to the peer before closing. */
  connectionControl(message: ControlMessage): void {
    this.send(encodeJsonFrame(0, FrameType.control, message));
  }

  open(request: ControlMessage): Channel {
    if (this.dead) throw new Error("the agent connection is closed");
    // Encoded first: a request too large to send is refused before a channel exists for it.
    const frame = encodeJsonFrame(this.nextId, FrameType.open, request);
    const channel = new Channel(this.nextId, this);
    this.nextId += 2;
    this.channels.set(channel.id, channel);
    this.send(frame);
    return channel;
  }

  // Frames are written as they come: the transport's own buffer is bounded by the per-stream
  // windows (data) and by the operations in progress (control), so there is nothing to hold back.
  send(frame: Buffer): void {
    if (!this.dead) this.stream.write(frame);
  }

  forget(channelId: number): void {
    this.channels.delete(channelId);
  }

  close(): void {
    this.shutdown();
  }

  private receive(chunk: Buffer): void {
    if (this.dead) return;
    try {
      for (const frame of this.reader.push(chunk)) this.dispatch(frame);
    } catch (error) {
      // A corrupt or misbehaving peer: nothing after this point can be trusted.
      this.shutdown(error instanceof Error ? error : new ProtocolError(String(error)));
      this.stream.destroy();
    }
  }

  private dispatch(frame: Frame): void {
    if (this.dead) return;
    if (frame.channel === 0) {
      if (frame.type === FrameType.hello) this.handlers.onHello?.(parseControl(frame.payload));
      else if (frame.type === FrameType.control) {
        this.handlers.onConnectionControl?.(parseControl(frame.payload));
      }
      return;
    }
    if (frame.type === FrameType.open) {
      const peerOpens = frame.channel % 2 === (this.side === "client" ? 0 : 1);
      if (!peerOpens || this.channels.has(frame.channel)) {
        throw new ProtocolError(`the peer cannot open channel ${frame.channel}`);
      }
      const channel = new Channel(frame.channel, this);
      this.channels.set(channel.id, channel);
      this.handlers.onOpen?.(channel, parseControl(frame.payload));
      return;
    }
    // Frames for a channel that is already closed here are late arrivals, not errors.
    this.channels.get(frame.channel)?.receive(frame);
  }

  private shutdown(error?: Error): void {
    if (this.dead) return;
    this.dead = true;
    for (const channel of [...this.channels.values()]) channel.terminate();
    // Whichever side ends first, both directions end, so neither peer waits on a half-open link.
    if (!this.stream.writableEnded) this.stream.end();
    this.handlers.onClose?.(error);
  }
}
