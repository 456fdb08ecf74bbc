import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  const raw = Buffer.concat(chunks);
  // Some clients compress large request bodies; the fake must read them like the real API does.
  const encoding = String(req.headers["content-encoding"] ?? "").toLowerCase();
  if (encoding === "gzip") return gunzipSync(raw);
  if (encoding === "deflate") return inflateSync(raw);
  if (encoding === "br") return brotliDecompressSync(raw);
  return raw;
}

/** The JSON value of a body, its text when it is not JSON, `undefined` when empty. */
export function parseBody(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  const text = raw.toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(payload)),
    ...headers,
  });
  res.end(payload);
}

/**
 * Writes Server-Sent Events and paces them. Once the client disconnects, every write is a no-op
 * and pauses end at once, so a cancelled stream stops the reply instead of finishing into the void.
 */
export class SseWriter {
  readonly #res: ServerResponse;
  readonly #stop = new AbortController();

  constructor(res: ServerResponse, headers: Record<string, string> = {}) {
    this.#res = res;
    res.on("close", () => this.#stop.abort());
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
      ...headers,
    });
    // Headers go out now so the client sees the stream open before the first (maybe delayed) event.
    res.flushHeaders();
  }

  get closed(): boolean {
    return this.#stop.signal.aborted;
  }

  /** `event: name` plus `data: json`, or only `data:` when `name` is undefined. */
  send(name: string | undefined, data: unknown): void {
    if (this.closed) return;
    const payload = typeof data === "string" ? data : JSON.stringify(data);
    this.#res.write(`${name === undefined ? "" : `event: ${name}\n`}data: ${payload}\n\n`);
  }

  async pause(delayMs: number): Promise<void> {
    if (delayMs <= 0 || this.closed) return;
    await sleep(delayMs, undefined, { signal: this.#stop.signal }).catch(() => undefined);
  }

  end(): void {
    if (!this.closed) this.#res.end();
  }
}

/** Text split into word-sized deltas, as models stream it; spaces stay with the word before. */
export function textChunks(text: string): string[] {
  return text.length === 0 ? [] : text.split(/(?<=\s)(?=\S)/);
}

/** Tool-call arguments (JSON, or a freeform tool's raw input) split into pieces, as they stream. */
export function payloadChunks(json: string, size = 24): string[] {
  const pieces: string[] = [];
  for (let start = 0; start < json.length; start += size) pieces.push(json.slice(start, start + size));
  return pieces;
}
