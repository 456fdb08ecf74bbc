import { describe, expect, it } from "vitest";
import { encodeDataFrame, encodeJsonFrame, FrameReader, FrameType, HEADER_BYTES } from "./frame.js";

describe("frames", () => {
  it("reassembles frames however the stream is cut", () => {
    const frames = Buffer.concat([
      encodeJsonFrame(3, FrameType.open, { type: "ping" }),
      encodeDataFrame(3, 1, Buffer.from("hello")),
      encodeJsonFrame(0, FrameType.hello, { protocolVersion: 1 }),
    ]);
    for (const cut of [1, 2, 5, HEADER_BYTES, 13, frames.length]) {
      const reader = new FrameReader();
      const seen = [];
      for (let offset = 0; offset < frames.length; offset += cut) {
        seen.push(...reader.push(frames.subarray(offset, offset + cut)));
      }
      expect(seen.map((frame) => [frame.channel, frame.type, frame.payload.toString("latin1")])).toEqual([
        [3, FrameType.open, '{"type":"ping"}'],
        [3, FrameType.data, "\u0001hello"],
        [0, FrameType.hello, '{"protocolVersion":1}'],
      ]);
    }
  });

  it("refuses a frame longer than the limit as soon as its header arrives", () => {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32BE(0x7fffffff, 0);
    const reader = new FrameReader();
    expect(() => reader.push(header.subarray(0, 3))).not.toThrow();
    expect(() => reader.push(header.subarray(3))).toThrow(/exceeds/);
  });
});
