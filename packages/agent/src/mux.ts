/**
 * Multiplexed channels over one byte stream, with per-stream credit-based flow control (as in
 * SSH): a sender may have at most the granted window of bytes unconsumed at the receiver, so a
 * slow reader stops the producer instead of growing buffers anywhere in between.
 */
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { Readable, Writable } from "node:stream";
import type { Frame } from "./frame.js";
import { encodeFrame, encodeJson, FrameDecoder, FrameType, MAX_PAYLOAD_BYTES } from "./frame.js";

/** Bytes a receiver lets a sender have in flight per stream. */
export const WINDOW_BYTES = 256 * 1024;

export type Json = Record<string, unknown>;

export class Channel extends EventEmitter {
  private readonly inbound = new Map<number, InboundStream>();
  private readonly outbound = new Map<number, OutboundStream>();
  closed = false;

  constructor(
    readonly id: number,
    private readonly mux: Mux,
  ) {
    super();
  }

  sendControl(message: Json): void {
    if (!this.closed) this.mux.send(encodeJson(this.id, FrameType.control, message));
  }

  /** The readable end of stream `streamId` (created on first use, so early data is kept). */
  readable(streamId: number): Readable {
    let stream = this.inbound.get(streamId);
    if (!stream) {
      stream = new InboundStream(this, streamId);
      this.inbound.set(streamId, stream);
    }
    return stream;
  }

  writable(streamId: number): Writable {
    let stream = this.outbound.get(streamId);
    if (!stream) {
      stream = new OutboundStream(this, streamId);
      this.outbound.set(streamId, stream);
    }
    return stream;
  }

  close(): void {
    if (this.closed) return;
    this.mux.send(encodeFrame(this.id, FrameType.close));
    this.terminate();
  }

  /** @internal */
  send(frame: Buffer): void {
    if (!this.closed) this.mux.send(frame);
  }

  /** @internal */
  receive(frame: Frame): void {
    switch (frame.type) {
      case FrameType.data: {
        const streamId = frame.payload.readUInt8(0);
        (this.readable(streamId) as InboundStream).deliver(frame.payload.subarray(1));
        break;
      }
      case FrameType.eof:
        (this.readable(frame.payload.readUInt8(0)) as InboundStream).push(null);
        break;
      case FrameType.window:
        (this.writable(frame.payload.readUInt8(0)) as OutboundStream).grant(frame.payload.readUInt32BE(1));
        break;
      case FrameType.control:
        this.emit("control", JSON.parse(frame.payload.toString("utf8")) as Json);
        break;
      case FrameType.close:
        this.terminate();
        break;
      default:
        break;
    }
  }

  /** @internal Ends everything locally, without telling the peer. */
  terminate(): void {
    if (this.closed) return;
    this.closed = true;
    this.mux.forget(this.id);
    for (const stream of this.inbound.values()) {
      if (!stream.readableEnded) stream.push(null);
    }
    for (const stream of this.outbound.values()) stream.abandon();
    this.emit("close");
  }
}

class InboundStream extends Readable {
  private consumed = 0;
  private granted = WINDOW_BYTES;

  constructor(
    private readonly channel: Channel,
    private readonly streamId: number,
  ) {
    super({ highWaterMark: WINDOW_BYTES });
  }

  deliver(chunk: Buffer): void {
    this.push(chunk);
  }

  // Every consumer, flowing (pipe, 'data') or paused (read()), receives data through a 'data'
  // emit, including Node's fast path that skips read(): that is where the window re-opens.
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const chunk = args[0];
    if (event === "data" && Buffer.isBuffer(chunk)) {
      this.consumed += chunk.length;
      this.grantCredit();
    }
    return super.emit(event, ...args);
  }

  override _read(): void {
    // Data arrives when the peer sends it; credit is granted in read().
  }

  private grantCredit(): void {
    const target = this.consumed + WINDOW_BYTES;
    if (target - this.granted < WINDOW_BYTES / 4) return;
    const credit = Buffer.allocUnsafe(5);
    credit.writeUInt8(this.streamId, 0);
    credit.writeUInt32BE(target - this.granted, 1);
    this.granted = target;
    this.channel.send(encodeFrame(this.channel.id, FrameType.window, credit));
  }
}

class OutboundStream extends Writable {
  private credit = WINDOW_BYTES;
  private waiting: (() => void) | undefined;
  private abandoned = false;

  constructor(
    private readonly channel: Channel,
    private readonly streamId: number,
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  grant(bytes: number): void {
    this.credit += bytes;
    const resume = this.waiting;
    this.waiting = undefined;
    resume?.();
  }

  abandon(): void {
    this.abandoned = true;
    this.grant(0);
    if (!this.destroyed) this.destroy();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.sendChunk(chunk, callback);
  }

  private sendChunk(chunk: Buffer, callback: (error?: Error | null) => void): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.abandoned) {
        callback();
        return;
      }
      if (this.credit <= 0) {
        this.waiting = () => this.sendChunk(chunk.subarray(offset), callback);
        return;
      }
      const size = Math.min(chunk.length - offset, this.credit, MAX_PAYLOAD_BYTES - 1);
      const payload = Buffer.allocUnsafe(size + 1);
      payload.writeUInt8(this.streamId, 0);
      chunk.copy(payload, 1, offset, offset + size);
      this.channel.send(encodeFrame(this.channel.id, FrameType.data, payload));
      this.credit -= size;
      offset += size;
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.channel.send(encodeFrame(this.channel.id, FrameType.eof, Buffer.from([this.streamId])));
    callback();
  }
}

export interface MuxEvents {
  onOpen?(channel: Channel, request: Json): void;
  onHello?(hello: Json): void;
  onClose?(error?: Error): void;
}

export class Mux {
  private readonly channels = new Map<number, Channel>();
  private nextId: number;
  private dead = false;

  constructor(
    private readonly stream: Duplex,
    private readonly events: MuxEvents,
    side: "client" | "server",
  ) {
    // Each side allocates from its own half of the id space, so ids never collide.
    this.nextId = side === "client" ? 1 : 2;
    const decoder = new FrameDecoder();
    stream.pipe(decoder);
    decoder.on("data", (frame: Frame) => this.dispatch(frame));
    const shutdown = (error?: Error): void => this.shutdown(error);
    decoder.once("error", shutdown);
    stream.once("error", shutdown);
    stream.once("close", () => shutdown());
    stream.once("end", () => shutdown());
  }

  get alive(): boolean {
    return !this.dead;
  }

  sendHello(hello: Json): void {
    this.send(encodeJson(0, FrameType.hello, hello));
  }

  open(request: Json): Channel {
    const id = this.nextId;
    this.nextId += 2;
    const channel = new Channel(id, this);
    this.channels.set(id, channel);
    this.send(encodeJson(id, FrameType.open, request));
    return channel;
  }

  send(frame: Buffer): void {
    if (!this.dead) this.stream.write(frame);
  }

  forget(id: number): void {
    this.channels.delete(id);
  }

  close(): void {
    this.shutdown();
    this.stream.end();
  }

  private dispatch(frame: Frame): void {
    if (frame.type === FrameType.hello) {
      this.events.onHello?.(JSON.parse(frame.payload.toString("utf8")) as Json);
      return;
    }
    if (frame.type === FrameType.open) {
      const channel = new Channel(frame.channel, this);
      this.channels.set(frame.channel, channel);
      this.events.onOpen?.(channel, JSON.parse(frame.payload.toString("utf8")) as Json);
      return;
    }
    this.channels.get(frame.channel)?.receive(frame);
  }

  private shutdown(error?: Error): void {
    if (this.dead) return;
    this.dead = true;
    for (const channel of [...this.channels.values()]) channel.terminate();
    this.events.onClose?.(error);
  }
}
