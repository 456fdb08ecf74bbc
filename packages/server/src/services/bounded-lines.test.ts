import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { boundedLines } from "./bounded-lines.js";

async function lines(chunks: (string | Buffer)[], maxBytes: number): Promise<string[]> {
  const found: string[] = [];
  for await (const line of boundedLines(Readable.from(chunks.map((c) => Buffer.from(c))), maxBytes))
    found.push(line);
  return found;
}

describe("boundedLines", () => {
  it("splits lines across chunks, with CRLF and a last line without newline", async () => {
    expect(await lines(["a\nb", "c\r\nd"], 100)).toEqual(["a", "bc", "d"]);
  });

  it("cuts an overlong line at the bound and skips the rest of it, holding no more than the bound", async () => {
    const huge = "x".repeat(10_000);
    expect(await lines([`first\n${huge.slice(0, 5000)}`, `${huge.slice(5000)}\nafter\n`], 64)).toEqual([
      "first",
      "x".repeat(64),
      "after",
    ]);
  });

  it("ends, without throwing, when its stream is cut off", async () => {
    const stream = new Readable({ read() {} });
    const reading = (async () => {
      const found: string[] = [];
      for await (const line of boundedLines(stream, 100)) found.push(line);
      return found;
    })();
    stream.push(Buffer.from("one\ntw"));
    setImmediate(() => stream.destroy());
    expect(await reading).toEqual(["one"]);
  });
});
