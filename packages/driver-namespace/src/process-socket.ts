/** A helper process's stdin and stdout seen as one socket: the host's end of a forwarded port. */
import { Duplex } from "node:stream";
import type { LaunchedProcess } from "@polydev/core";

class ProcessSocket extends Duplex {
  readonly remoteAddress = "127.0.0.1";
  private exited = false;

  constructor(private readonly process: LaunchedProcess) {
    super({ allowHalfOpen: true });
    process.stdin.on("error", () => undefined);
    process.stdout.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) process.stdout.pause();
    });
    process.stdout.once("end", () => this.push(null));
    process.stdout.once("error", (error) => this.destroy(error));
    // Once the helper is gone nothing more can be sent either: the socket closes when its last
    // bytes have been read.
    process.exited
      .then(() => {
        this.exited = true;
        if (this.readableEnded) this.destroy();
      })
      .catch(() => undefined);
    this.once("end", () => {
      if (this.exited) this.destroy();
    });
  }

  override _read(): void {
    this.process.stdout.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.process.stdin.write(chunk, () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.process.stdin.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.process.kill();
    callback(error);
  }
}

export function processSocket(process: LaunchedProcess): Duplex {
  return new ProcessSocket(process);
}
