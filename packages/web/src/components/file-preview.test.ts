import { describe, expect, it } from "vitest";
import { PREVIEW_BYTES, previewOf, readPreview } from "./file-preview";

const utf8 = (text: string) => new TextEncoder().encode(text);

function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

describe("file preview", () => {
  it("shows UTF-8 text as text, and calls NUL bytes or invalid UTF-8 binary", () => {
    expect(previewOf(utf8("héllo\n"), false)).toEqual({ kind: "text", text: "héllo\n", truncated: false });
    // A PNG's first bytes: not UTF-8, and a NUL soon after.
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]);
    expect(previewOf(png, false)).toEqual({ kind: "binary", truncated: false });
    expect(previewOf(Uint8Array.from([0x61, 0xff, 0x62]), false).kind).toBe("binary");
    expect(previewOf(Uint8Array.from([0x61, 0, 0x62]), false).kind).toBe("binary");
  });

  it("reads at most its limit, and a character cut at the limit is no sign of binary", async () => {
    const big = new Uint8Array(PREVIEW_BYTES + 10).fill(0x61);
    // "é" (two bytes) straddles the limit.
    big.set([0xc3, 0xa9], PREVIEW_BYTES - 1);
    const preview = await readPreview(streamOf(big.subarray(0, 1000), big.subarray(1000)));
    expect(preview.kind).toBe("text");
    expect(preview.truncated).toBe(true);
    expect(preview.kind === "text" ? preview.text.length : 0).toBe(PREVIEW_BYTES - 1);
    expect(await readPreview(streamOf(utf8("a"), utf8("b")))).toEqual({
      kind: "text",
      text: "ab",
      truncated: false,
    });
  });
});
