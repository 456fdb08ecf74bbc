/**
 * One operation's share of a connection: JSON control messages plus up to 256 byte streams
 * (stdin/stdout/stderr for exec), each with its own flow-control window.
 */
import { EventEmitter } from "node:events";
import { InboundStream, OutboundStream, ProtocolError } from "./flow-control.js";
import type { Frame } from "./frame.js";
import { encodeFrame, encodeJsonFrame, FrameType } from "./frame.js";

export interface ControlMessage {
  type: string;
  [field: string]: unknown;
}

/** Stream ids inside a channel. */
export const StreamId = { stdin: 0, stdout: 1, stderr: 2 } as const;

interface ChannelEvents {
  control: [ControlMessage];
  close: [];
}

/** What a channel needs from its connection. */
export interface ChannelHost {
  send(frame: Buffer): void;
  forget(channelId: number): void;
}

export function parseControl(payload: Buffer): ControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch {
    throw new ProtocolError("a control message is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("a control message is not a JSON object");
  }
  const type: unknown = "type" in value ? value.type : undefined;
  if (typeof type !== "string") throw new ProtocolError("a control message has no type");
  return { ...value, type };
}

export class Channel extends EventEmitter<ChannelEvents> {
  private readonly inbound = new Map<number, InboundStream>();
  private readonly outbound = new Map<number, OutboundStream>();
  private isClosed = false;

  constructor(
    readonly id: number,
    private readonly host: ChannelHost,
  ) {
    super();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(frame: Buffer): void {
    if (!this.isClosed) this.host.send(frame);
  }

  control(message: ControlMessage): void {
    this.send(encodeJsonFrame(this.id, FrameType.control, message));
  }

  /** The receiving end of a stream; made on first use, so bytes that arrive early are kept. */
  readable(streamId: number): InboundStream {
    let stream = this.inbound.get(streamId);
    if (stream === undefined) {
      stream = new InboundStream(this, streamId);
      this.inbound.set(streamId, stream);
    }
    return stream;
  }

  writable(streamId: number): OutboundStream {
    let stream = this.outbound.get(streamId);
    if (stream === undefined) {
      stream = new OutboundStream(this, streamId);
      this.outbound.set(streamId, stream);
    }
    return stream;
  }

  /** Tells the peer this side is done with the channel and drops everything still in flight. */
  close(): void {
    if (this.isClosed) return;
    this.host.send(encodeFrame(this.id, FrameType.close));
    this.terminate();
  }

  receive(frame: Frame): void {
    switch (frame.type) {
      case FrameType.data:
        if (frame.payload.length < 1) throw new ProtocolError("a data frame has no stream id");
        this.readable(frame.payload.readUInt8(0)).deliver(frame.payload.subarray(1));
        return;
      case FrameType.eof:
        if (frame.payload.length !== 1) throw new ProtocolError("an eof frame needs exactly a stream id");
        this.readable(frame.payload.readUInt8(0)).deliverEof();
        return;
      case FrameType.window:
        if (frame.payload.length !== 5) throw new ProtocolError("a window frame needs a stream id and u32");
        this.writable(frame.payload.readUInt8(0)).grant(frame.payload.readUInt32BE(1));
        return;
      case FrameType.control:
        this.emit("control", parseControl(frame.payload));
        return;
      case FrameType.close:
        this.terminate();
        return;
      default:
        // Unknown frame types are skipped, so a newer peer can add optional ones (PROTOCOL.md).
        return;
    }
  }

  /** Ends the channel locally without telling the peer (it closed, or the connection died). */
  terminate(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.host.forget(this.id);
    for (const stream of this.inbound.values()) stream.abandon();
    for (const stream of this.outbound.values()) stream.abandon();
    this.emit("close");
  }
}
