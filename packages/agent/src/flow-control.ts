/**
 * Per-stream credit-based flow control, as in SSH: a receiver grants its sender a window of
 * bytes, and the sender stops when the window is used up. Credit comes back only as the
 * application consumes data, so a slow reader stops the producing process instead of growing
 * buffers anywhere in between: at most WINDOW_BYTES per stream are ever in flight or queued.
 */
import { Readable, Writable } from "node:stream";
import { encodeDataFrame, encodeFrame, FrameType, MAX_DATA_BYTES } from "./frame.js";

/** Bytes a receiver lets a sender have unconsumed per stream. */
export const WINDOW_BYTES = 256 * 1024;
/** Credit is returned in batches of at least this much, so small reads do not cost a frame each. */
const GRANT_BATCH_BYTES = WINDOW_BYTES / 4;

/** Where a stream sends its frames: its channel. */
export interface FrameSink {
  readonly id: number;
  send(frame: Buffer): void;
}

export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
}

/** The receiving end of one stream of a channel. */
export class InboundStream extends Readable {
  private received = 0;
  private consumed = 0;
  private granted = WINDOW_BYTES;
  private eofReceived = false;

  constructor(
    private readonly sink: FrameSink,
    private readonly streamId: number,
  ) {
    super({ highWaterMark: WINDOW_BYTES });
  }

  /** Bytes received and not yet read by the application; never above WINDOW_BYTES. */
  get bufferedBytes(): number {
    return this.received - this.consumed;
  }

  deliver(chunk: Buffer): void {
    if (this.eofReceived)
      throw new ProtocolError(`stream ${this.streamId} of channel ${this.sink.id} sent data after its end`);
    this.received += chunk.length;
    if (this.received > this.granted) {
      throw new ProtocolError(`stream ${this.streamId} of channel ${this.sink.id} overran its window`);
    }
    if (!this.destroyed) {
      this.push(chunk);
      return;
    }
    // Nobody will read these bytes (the reader destroyed the stream): drop them and keep the
    // sender moving, so that it is not stalled forever by a reader that has gone away.
    this.consumed += chunk.length;
    this.grantCredit();
  }

  deliverEof(): void {
    if (this.eofReceived) return;
    this.eofReceived = true;
    if (!this.destroyed) this.push(null);
  }

  /**
   * The channel is gone. A stream that already got its end keeps its buffered data; any other is
   * destroyed without an error (nobody may be listening for one), so readers see a premature close
   * rather than a clean end and cannot mistake a cut-off output for a complete one.
   */
  abandon(): void {
    if (!this.eofReceived && !this.destroyed) this.destroy();
  }

  // Every consumer (pipe, 'data' listeners, read(), async iteration) receives bytes through a
  // 'data' emit, including Node's fast paths that skip the buffer: it is the one place where
  // "consumed" is exact, so it is where the window reopens.
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const chunk = args[0];
    if (event === "data" && Buffer.isBuffer(chunk)) {
      this.consumed += chunk.length;
      this.grantCredit();
    }
    return super.emit(event, ...args);
  }

  override _read(): void {
    // Bytes arrive when the peer has credit; credit is granted as data is consumed (see emit).
  }

  private grantCredit(): void {
    if (this.eofReceived) return;
    const target = this.consumed + WINDOW_BYTES;
    if (target - this.granted < GRANT_BATCH_BYTES) return;
    const payload = Buffer.allocUnsafe(5);
    payload.writeUInt8(this.streamId, 0);
    payload.writeUInt32BE(target - this.granted, 1);
    this.granted = target;
    this.sink.send(encodeFrame(this.sink.id, FrameType.window, payload));
  }
}

/** The sending end of one stream of a channel: a write completes once the peer had room for it. */
export class OutboundStream extends Writable {
  private credit = WINDOW_BYTES;
  private resume: (() => void) | undefined;
  private abandoned = false;
  private eofSent = false;

  constructor(
    private readonly sink: FrameSink,
    private readonly streamId: number,
  ) {
    super({ highWaterMark: MAX_DATA_BYTES });
  }

  grant(bytes: number): void {
    this.credit += bytes;
    const resume = this.resume;
    this.resume = undefined;
    resume?.();
  }

  /** The channel is gone: pending writes complete (their bytes are dropped) and the stream closes. */
  abandon(): void {
    this.abandoned = true;
    this.grant(0);
    if (!this.destroyed) this.destroy();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.sendFrom(chunk, 0, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sendEof();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Destroying a writable (like closing a socket) still tells the reader there is no more.
    this.sendEof();
    callback(error);
  }

  private sendFrom(chunk: Buffer, start: number, callback: (error?: Error | null) => void): void {
    let offset = start;
    while (offset < chunk.length) {
      if (this.abandoned) break;
      if (this.credit <= 0) {
        this.resume = () => this.sendFrom(chunk, offset, callback);
        return;
      }
      const size = Math.min(chunk.length - offset, this.credit, MAX_DATA_BYTES);
      this.sink.send(encodeDataFrame(this.sink.id, this.streamId, chunk.subarray(offset, offset + size)));
      this.credit -= size;
      offset += size;
    }
    callback();
  }

  private sendEof(): void {
    if (this.eofSent || this.abandoned) return;
    this.eofSent = true;
    this.sink.send(encodeFrame(this.sink.id, FrameType.eof, Buffer.from([this.streamId])));
  }
}
