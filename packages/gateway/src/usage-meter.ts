/**
 * Counts tokens from provider responses as they stream through, without holding the stream:
 * chunks pass on unchanged while SSE `data:` lines (or a whole small JSON body) are parsed for
 * the usage fields each provider reports.
 */

import type { TransformCallback } from "node:stream";
import { Transform } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import type { GatewayProvider } from "./providers.js";

export interface Usage {
  model: string | undefined;
  inputTokens: number;
  outputTokens: number;
}

/** A JSON body larger than this is passed through without being parsed for usage. */
const MAX_JSON_BYTES = 4 * 1024 * 1024;
/** An SSE line longer than this cannot be a usage event; it is skipped, not buffered. */
const MAX_LINE_CHARS = 1024 * 1024;

type Json = Record<string, unknown>;
const obj = (value: unknown): Json | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
const num = (value: unknown): number | undefined => (typeof value === "number" ? value : undefined);
const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

/** Folds one parsed event or body into the running usage; each provider reports differently. */
export function foldUsage(provider: GatewayProvider, usage: Usage, event: Json): void {
  if (provider === "anthropic") {
    const message = obj(event.message);
    const start = obj(message?.usage);
    if (message) usage.model = str(message.model) ?? usage.model;
    const input = start ?? obj(event.usage);
    if (input) {
      const cached =
        (num(input.cache_creation_input_tokens) ?? 0) + (num(input.cache_read_input_tokens) ?? 0);
      const inputTokens = num(input.input_tokens);
      if (inputTokens !== undefined) usage.inputTokens = Math.max(usage.inputTokens, inputTokens + cached);
      const output = num(input.output_tokens);
      if (output !== undefined) usage.outputTokens = Math.max(usage.outputTokens, output);
    }
    usage.model = str(event.model) ?? usage.model;
    return;
  }
  if (provider === "openai") {
    const response = obj(event.response) ?? event;
    usage.model = str(response.model) ?? usage.model;
    const u = obj(response.usage);
    if (u) {
      usage.inputTokens = Math.max(usage.inputTokens, num(u.input_tokens) ?? num(u.prompt_tokens) ?? 0);
      usage.outputTokens = Math.max(
        usage.outputTokens,
        num(u.output_tokens) ?? num(u.completion_tokens) ?? 0,
      );
    }
    return;
  }
  usage.model = str(event.modelVersion) ?? usage.model;
  const u = obj(event.usageMetadata);
  if (u) {
    usage.inputTokens = Math.max(usage.inputTokens, num(u.promptTokenCount) ?? 0);
    usage.outputTokens = Math.max(
      usage.outputTokens,
      (num(u.candidatesTokenCount) ?? 0) + (num(u.thoughtsTokenCount) ?? 0),
    );
  }
}

function parseObject(text: string): Json | undefined {
  try {
    return obj(JSON.parse(text));
  } catch {
    return undefined;
  }
}

export class UsageMeter extends Transform {
  readonly usage: Usage = { model: undefined, inputTokens: 0, outputTokens: 0 };
  /** The start of an SSE line whose end has not arrived yet; never longer than MAX_LINE_CHARS. */
  private pending = "";
  /** Inside a line already known to be too long: its bytes are dropped up to its newline. */
  private skipping = false;
  /** Multi-byte characters split across chunks are joined, not mangled. */
  private readonly decoder = new StringDecoder("utf8");
  private jsonChunks: Buffer[] = [];
  private jsonBytes = 0;

  constructor(
    private readonly provider: GatewayProvider,
    private readonly streaming: boolean,
    requestModel: string | undefined,
  ) {
    super();
    this.usage.model = requestModel;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.streaming) this.scanLines(this.decoder.write(chunk));
    else if (this.jsonBytes + chunk.length <= MAX_JSON_BYTES) {
      this.jsonChunks.push(chunk);
      this.jsonBytes += chunk.length;
    } else {
      this.jsonChunks = [];
      this.jsonBytes = Number.POSITIVE_INFINITY;
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.streaming) this.scanLines(`${this.decoder.end()}\n`);
    else if (this.jsonChunks.length > 0) {
      const body = parseObject(Buffer.concat(this.jsonChunks).toString("utf8"));
      this.jsonChunks = [];
      if (body) foldUsage(this.provider, this.usage, body);
    }
    callback();
  }

  private scanLines(text: string): void {
    let start = 0;
    for (let newline = text.indexOf("\n"); newline >= 0; newline = text.indexOf("\n", start)) {
      if (this.skipping) this.skipping = false;
      else this.scanLine(this.pending + text.slice(start, newline));
      this.pending = "";
      start = newline + 1;
    }
    if (this.skipping) return;
    this.pending += text.slice(start);
    if (this.pending.length > MAX_LINE_CHARS) {
      // A line this long is not a usage event: drop it through its end, including any tail that
      // might look like a `data:` line of its own.
      this.pending = "";
      this.skipping = true;
    }
  }

  private scanLine(raw: string): void {
    if (raw.length > MAX_LINE_CHARS) return;
    const line = raw.trim();
    if (!line.startsWith("data:")) return;
    const event = parseObject(line.slice(5).trim());
    if (event) foldUsage(this.provider, this.usage, event);
  }
}
