/**
 * Two joined in-memory duplex ends, like Node 22's `stream.duplexPair` (Node 20 has none).
 * Delivery is deferred to the next tick, as with a real transport, so neither side ever runs
 * inside the other's write call; a write completes once the peer's buffer has room.
 */
import { Duplex } from "node:stream";

class PairEnd extends Duplex {
  peer: PairEnd | undefined;
  private pendingWrite: (() => void) | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    process.nextTick(() => {
      const peer = this.peer;
      if (peer === undefined || peer.destroyed) return callback();
      if (peer.push(chunk)) callback();
      else peer.pendingWrite = callback;
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    process.nextTick(() => {
      this.peer?.push(null);
      callback();
    });
  }

  override _read(): void {
    const resume = this.pendingWrite;
    this.pendingWrite = undefined;
    resume?.();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    if (peer !== undefined && !peer.destroyed) peer.destroy();
    callback(error);
  }
}

export function duplexPair(): [Duplex, Duplex] {
  const a = new PairEnd();
  const b = new PairEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
