/**
 * A forwarded TCP connection seen as a socket: the bytes of one channel's two streams. Stream 1
 * carries what comes from the sandbox side, stream 0 what goes to it, whichever side opened the
 * channel (so `forward.in` and `forward.accepted` read the same). Node's HTTP server takes it as
 * a connection, so the socket methods it calls exist as no-ops.
 */
import { Duplex } from "node:stream";
import type { Channel } from "./channel.js";
import { StreamId } from "./channel.js";
import type { InboundStream, OutboundStream } from "./flow-control.js";

export class ChannelSocket extends Duplex {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 0;
  private readonly input: InboundStream;
  private readonly output: OutboundStream;
  private inputEnded = false;
  private outputEnded = false;

  constructor(
    private readonly channel: Channel,
    /** Which end of the channel this is: the agent sends on stream 1, the client on stream 0. */
    side: "agent" | "client",
  ) {
    super({ allowHalfOpen: true });
    this.input = channel.readable(side === "client" ? StreamId.stdout : StreamId.stdin);
    this.output = channel.writable(side === "client" ? StreamId.stdin : StreamId.stdout);
    this.input.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) this.input.pause();
    });
    this.input.once("end", () => {
      this.inputEnded = true;
      this.push(null);
      this.closeWhenDone();
    });
    this.input.on("error", (error) => this.destroy(error));
    this.output.on("error", () => undefined);
    // The peer closed the channel (or the connection died): a stream not ended by then was cut.
    channel.once("close", () => {
      if (!this.inputEnded || !this.outputEnded) this.destroy();
    });
  }

  override _read(): void {
    this.input.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.output.write(chunk, (error) => callback(error ?? null));
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.output.end(() => {
      this.outputEnded = true;
      this.closeWhenDone();
      callback();
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.channel.close();
    callback(error);
  }

  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  /** Both directions finished cleanly: the channel has nothing more to carry. */
  private closeWhenDone(): void {
    if (this.inputEnded && this.outputEnded) this.channel.close();
  }
}
