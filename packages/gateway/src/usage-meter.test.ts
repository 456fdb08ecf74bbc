import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { UsageMeter } from "./usage-meter.js";

/** Runs chunks through a meter (as the upstream delivers them) and returns its reading. */
async function meter(chunks: Buffer[], streaming = true): Promise<UsageMeter> {
  const usage = new UsageMeter("anthropic", streaming, undefined);
  let passed = 0;
  await pipeline(Readable.from(chunks), usage, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) passed += chunk.length;
  });
  // Metering never holds back or alters the stream.
  expect(passed).toBe(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  return usage;
}

const delta = (outputTokens: number): string =>
  `data: ${JSON.stringify({ type: "message_delta", usage: { output_tokens: outputTokens } })}\n`;

describe("usage meter", () => {
  it("drops an overlong SSE line whole: its tail is not read as an event of its own", async () => {
    const filler = Buffer.alloc(64 * 1024, "x");
    const chunks = [
      // 17 × 64 KiB without a newline: just over the 1 MiB line limit when the next chunk comes.
      ...Array.from({ length: 17 }, () => filler),
      Buffer.from(delta(999_999)), // still the same line, so not a usage event
      Buffer.from(delta(5)),
    ];
    const result = await meter(chunks);
    expect(result.usage.outputTokens).toBe(5);
  });

  it("reads characters split across chunks", async () => {
    const line = Buffer.from(
      `data: ${JSON.stringify({ type: "message_start", message: { model: "claude-é", usage: { input_tokens: 3 } } })}\n`,
    );
    const split = line.indexOf(Buffer.from("é")) + 1; // inside the two bytes of é
    const result = await meter([line.subarray(0, split), line.subarray(split)]);
    expect(result.usage).toEqual({ model: "claude-é", inputTokens: 3, outputTokens: 0 });
  });

  it("reads a usage event whose line ends only with the stream", async () => {
    const result = await meter([Buffer.from(delta(7).trimEnd())]);
    expect(result.usage.outputTokens).toBe(7);
  });
});
