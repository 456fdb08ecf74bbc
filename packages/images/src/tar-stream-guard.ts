/**
 * Counts a tar stream against a limit (a bomb of zero blocks or PAX records writes no file but
 * must still stop) and checks it ends with the end-of-archive blocks: tar-stream notices a stream
 * cut inside an entry but not one cut between two entries. Layers and uploaded image archives
 * both go through it; `what` names the stream in its errors ("the layer's tar stream").
 */
import { Transform, type TransformCallback } from "node:stream";
import { PolydevError } from "@polydev/core";

/** A tar archive ends with two 512-byte blocks of zeros. */
const END_OF_ARCHIVE_BYTES = 1024;

export class TarStreamGuard extends Transform {
  private total = 0;
  private tail = Buffer.alloc(0);

  constructor(
    private readonly limitBytes: number,
    private readonly what: string,
    /** Called with the first chunk; an error it returns refuses the stream (e.g. a gzip upload). */
    private readonly checkStart?: (chunk: Buffer) => PolydevError | undefined,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.total === 0 && this.checkStart) {
      const refusal = this.checkStart(chunk);
      if (refusal) {
        callback(refusal);
        return;
      }
    }
    this.total += chunk.length;
    if (this.total > this.limitBytes) {
      callback(
        new PolydevError("payload_too_large", `${this.what} is longer than ${this.limitBytes} bytes`, {
          details: { limitBytes: this.limitBytes },
        }),
      );
      return;
    }
    this.tail = Buffer.concat([this.tail, chunk]).subarray(-END_OF_ARCHIVE_BYTES);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.tail.length < END_OF_ARCHIVE_BYTES || this.tail.some((byte) => byte !== 0)) {
      callback(
        new PolydevError("invalid_request", `${this.what} is truncated: it has no end-of-archive blocks`),
      );
      return;
    }
    callback();
  }
}
