/**
 * Wire framing: every frame is `u32 payload length | u32 channel | u8 type | payload`.
 * Channel 0 carries the hello; every operation gets its own channel.
 */

import type { TransformCallback } from "node:stream";
import { Transform } from "node:stream";

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
  type: FrameType;
  payload: Buffer;
}

const HEADER_BYTES = 9;
/** Large writes are split so one busy stream cannot hold the link for long. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;
/** Anything larger is a corrupt or hostile peer, not a frame. */
const MAX_ACCEPTED_PAYLOAD_BYTES = 4 * 1024 * 1024;

export function encodeFrame(channel: number, type: FrameType, payload: Buffer = Buffer.alloc(0)): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.writeUInt32BE(channel, 4);
  frame.writeUInt8(type, 8);
  payload.copy(frame, HEADER_BYTES);
  return frame;
}

export function encodeJson(channel: number, type: FrameType, value: unknown): Buffer {
  return encodeFrame(channel, type, Buffer.from(JSON.stringify(value)));
}

/** Bytes in, frames out (object mode). */
export class FrameDecoder extends Transform {
  private buffer: Buffer = Buffer.alloc(0);

  constructor() {
    super({ readableObjectMode: true });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= HEADER_BYTES) {
      const length = this.buffer.readUInt32BE(0);
      if (length > MAX_ACCEPTED_PAYLOAD_BYTES) {
        callback(new Error(`agent protocol: frame of ${length} bytes exceeds the limit`));
        return;
      }
      if (this.buffer.length < HEADER_BYTES + length) break;
      const type = this.buffer.readUInt8(8) as FrameType;
      const frame: Frame = {
        channel: this.buffer.readUInt32BE(4),
        type,
        payload: this.buffer.subarray(HEADER_BYTES, HEADER_BYTES + length),
      };
      this.buffer = this.buffer.subarray(HEADER_BYTES + length);
      this.push(frame);
    }
    callback();
  }
}
