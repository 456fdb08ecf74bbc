import { PolydevError } from "@polydev/core";

/**
 * Wire framing: `u32 payload length | u32 channel | u8 type | payload`, big-endian. Length comes
 * first so a reader can skip frames of types it does not know (see PROTOCOL.md).
 */

export const FrameType = {
  hello: 0,
  open: 1,
  data: 2,
  eof: 3,
  control: 4,
  window: 5,
  close: 6,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export interface Frame {
  channel: number;
  type: number;
  payload: Buffer;
}

export const HEADER_BYTES = 9;
/** Data frames are cut to this size so one busy stream cannot hold the link for long. */
export const MAX_DATA_BYTES = 64 * 1024;
/** A longer frame is a corrupt or hostile peer: refusing it bounds what one frame can cost. */
export const MAX_FRAME_PAYLOAD_BYTES = 1024 * 1024;

export function encodeFrame(channel: number, type: FrameType, payload?: Buffer): Buffer {
  const length = payload === undefined ? 0 : payload.length;
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32BE(length, 0);
  frame.writeUInt32BE(channel, 4);
  frame.writeUInt8(type, 8);
  payload?.copy(frame, HEADER_BYTES);
  return frame;
}

/**
 * A JSON frame (open, control, hello). One that would exceed MAX_FRAME_PAYLOAD_BYTES is refused
 * here, on the sending side, as `payload_too_large` for that one request or answer: sent, the
 * peer would have to take it for a corrupt stream and end the whole connection.
 */
export function encodeJsonFrame(channel: number, type: FrameType, value: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(value));
  if (payload.length > MAX_FRAME_PAYLOAD_BYTES) {
    throw new PolydevError(
      "payload_too_large",
      `the request or answer is ${payload.length} bytes; argv, env and the other fields together must stay under ${MAX_FRAME_PAYLOAD_BYTES} bytes`,
    );
  }
  return encodeFrame(channel, type, payload);
}

/** A data frame whose payload is `u8 stream | bytes`, built without an intermediate copy. */
export function encodeDataFrame(channel: number, stream: number, bytes: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + 1 + bytes.length);
  frame.writeUInt32BE(1 + bytes.length, 0);
  frame.writeUInt32BE(channel, 4);
  frame.writeUInt8(FrameType.data, 8);
  frame.writeUInt8(stream, HEADER_BYTES);
  bytes.copy(frame, HEADER_BYTES + 1);
  return frame;
}

/**
 * Reassembles frames from arbitrary chunks. Partial input is kept as a list of chunks and joined
 * once a whole frame is there, so a frame split into many small reads costs one copy.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** Returns the complete frames in `chunk` (and earlier leftovers); throws on a corrupt stream. */
  push(chunk: Buffer): Frame[] {
    let buffer: Buffer;
    if (this.pendingBytes === 0) buffer = chunk;
    else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (!this.hasWholeFrame()) return [];
      buffer = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    const frames: Frame[] = [];
    let offset = 0;
    while (buffer.length - offset >= HEADER_BYTES) {
      const length = buffer.readUInt32BE(offset);
      if (length > MAX_FRAME_PAYLOAD_BYTES) {
        throw new Error(`agent protocol: a frame of ${length} bytes exceeds ${MAX_FRAME_PAYLOAD_BYTES}`);
      }
      const end = offset + HEADER_BYTES + length;
      if (buffer.length < end) break;
      frames.push({
        channel: buffer.readUInt32BE(offset + 4),
        type: buffer.readUInt8(offset + 8),
        payload: buffer.subarray(offset + HEADER_BYTES, end),
      });
      offset = end;
    }
    if (offset < buffer.length) {
      this.pending = [buffer.subarray(offset)];
      this.pendingBytes = buffer.length - offset;
    }
    return frames;
  }

  private hasWholeFrame(): boolean {
    if (this.pendingBytes < HEADER_BYTES) return false;
    const head = this.pending[0] ?? Buffer.alloc(0);
    const header = head.length >= 4 ? head : Buffer.concat(this.pending, HEADER_BYTES);
    const length = header.readUInt32BE(0);
    // An oversized length is let through so that push() rejects it instead of buffering it.
    return length > MAX_FRAME_PAYLOAD_BYTES || this.pendingBytes >= HEADER_BYTES + length;
  }
}
