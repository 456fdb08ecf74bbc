/**
 * Reads exact byte counts from a stream with a deadline, holding at most `maxBufferedBytes`
 * (the stream is paused beyond that: whatever a sandbox sends, the host buffers a bounded
 * amount). Used for DNS frames and for peeking at a connection's first bytes.
 */
import type { Duplex } from "node:stream";

export type ReadOutcome = "ok" | "end" | "timeout" | "overflow";

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private waiter: (() => void) | undefined;
  private readonly onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    this.chunks.push(bytes);
    this.buffered += bytes.length;
    if (this.buffered >= this.maxBufferedBytes) this.stream.pause();
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };

  constructor(
    private readonly stream: Duplex,
    private readonly maxBufferedBytes: number,
  ) {
    stream.on("data", this.onData);
    stream.on("end", this.onEnd);
    stream.on("close", this.onEnd);
  }

  /** Everything received and not yet taken. */
  get bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Whether the stream's readable side ended (no more bytes will come). */
  get done(): boolean {
    return this.ended;
  }

  /**
   * Waits until more bytes than now arrived, the stream ended, or the deadline passed.
   * "overflow" when the buffer is full (nothing more will be read).
   */
  async more(deadlineMs: number): Promise<ReadOutcome> {
    if (this.buffered >= this.maxBufferedBytes) return "overflow";
    if (this.ended) return "end";
    const before = this.buffered;
    this.stream.resume();
    while (this.buffered === before && !this.ended) {
      const waitMs = deadlineMs - Date.now();
      if (waitMs <= 0) return "timeout";
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.buffered > before ? "ok" : "end";
  }

  /** Exactly `length` bytes, or why not. */
  async take(length: number, deadlineMs: number): Promise<Buffer | Exclude<ReadOutcome, "ok">> {
    if (length > this.maxBufferedBytes) return "overflow";
    while (this.buffered < length) {
      const outcome = await this.more(deadlineMs);
      if (outcome !== "ok") return outcome;
    }
    const all = this.bytes;
    const taken = all.subarray(0, length);
    const rest = all.subarray(length);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }

  /** Stops reading: pauses the stream and hands back what was buffered. */
  detach(): Buffer {
    this.stream.off("data", this.onData);
    this.stream.off("end", this.onEnd);
    this.stream.off("close", this.onEnd);
    this.stream.pause();
    this.wake();
    const rest = this.bytes;
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
