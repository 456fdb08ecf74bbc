/**
 * Lines of a sandbox's output, each at most `maxBytes` long. readline keeps a line whole until
 * its newline, so a process that prints without newlines could grow the server's memory
 * without end; here an overlong line is cut at `maxBytes` (the rest of it is skipped up to its
 * newline) and never held longer. A line cut off by the end of a broken stream is dropped. Ends when the stream ends, and also when it is cut off (its
 * sandbox went away), which readline would wait out forever.
 */
import type { Readable } from "node:stream";

export async function* boundedLines(stream: Readable, maxBytes: number): AsyncGenerator<string> {
  let parts: Buffer[] = [];
  let length = 0;
  let skipping = false;
  const take = (): string => {
    const line = Buffer.concat(parts, length).toString("utf8");
    parts = [];
    length = 0;
    return line.endsWith("\r") ? line.slice(0, -1) : line;
  };
  try {
    for await (const chunk of stream) {
      const buffer = chunk as Buffer;
      let start = 0;
      for (;;) {
        const newline = buffer.indexOf(10, start);
        const end = newline < 0 ? buffer.length : newline;
        if (!skipping) {
          const room = maxBytes - length;
          const piece = buffer.subarray(start, Math.min(end, start + room));
          if (piece.length > 0) {
            parts.push(piece);
            length += piece.length;
          }
          if (end - start > room) skipping = true;
        }
        if (newline < 0) break;
        const line = take();
        skipping = false;
        yield line;
        start = newline + 1;
      }
    }
  } catch (error) {
    if (!(error instanceof Error && "code" in error && error.code === "ERR_STREAM_PREMATURE_CLOSE"))
      throw error;
  }
  if (length > 0 && stream.readableEnded) yield take();
}
