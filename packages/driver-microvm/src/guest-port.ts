/**
 * The guest's end of the link: the virtio-serial port as a series of sessions, each a fresh
 * multiplexer (see link-protocol.ts). The port is a character device, so it is read and written
 * with plain blocking calls on libuv's thread pool (node's net cannot take it).
 *
 * Linux's virtio_console makes a write block while no host is connected and a read return 0
 * once the host disconnects: a session starts with a write (returns when a host is there), and
 * a read of 0 ends it, after which the port is opened again. A host's reset also ends the
 * session in place: the marker line and a new hello follow on the same descriptor.
 */
import { close, open, read, write } from "node:fs";
import { Duplex } from "node:stream";
import type { Channel, ControlMessage } from "@polydev/agent";
import { Mux } from "@polydev/agent";
import { resetMarker } from "./link-protocol.js";

export interface PortHandlers {
  hello(): ControlMessage;
  onOpen(channel: Channel, request: ControlMessage): void;
  onRequest(message: ControlMessage): Promise<ControlMessage>;
}

const READ_BYTES = 64 * 1024;

/** One session's view of the port: writes go to the descriptor, reads are pushed in. */
class SessionStream extends Duplex {
  constructor(private readonly port: PortWriter) {
    super({ allowHalfOpen: false });
  }
  override _read(): void {
    // Reads are pushed by the port loop; the host's windows bound what arrives.
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.port.write(chunk).then(
      () => callback(),
      (error: Error) => callback(error),
    );
  }
  override _final(callback: () => void): void {
    callback();
  }
}

/** Writes in order, whole: the device takes at most 32 KiB per call. */
class PortWriter {
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly fd: number) {}
  write(data: Buffer): Promise<void> {
    const next = this.tail.then(() => writeAll(this.fd, data));
    this.tail = next.catch(() => undefined);
    return next;
  }
}

function writeAll(fd: number, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (offset: number): void => {
      if (offset >= data.length) {
        resolve();
        return;
      }
      write(fd, data, offset, data.length - offset, null, (error, written) => {
        if (error) reject(error);
        else step(offset + written);
      });
    };
    step(0);
  });
}

function openPort(path: string): Promise<number> {
  return new Promise((resolve, reject) =>
    open(path, "r+", (error, fd) => (error ? reject(error) : resolve(fd))),
  );
}

function readPort(fd: number, buffer: Buffer): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, buffer, 0, buffer.length, null, (error, bytes) => (error ? reject(error) : resolve(bytes))),
  );
}

export function openPortSessions(path: string, handlers: PortHandlers): void {
  const loop = async (): Promise<void> => {
    for (;;) {
      const fd = await openPort(path);
      const writer = new PortWriter(fd);
      let latestNonce: string | undefined;
      let current: { stream: SessionStream; mux: Mux; nonce: string | undefined } | undefined;
      const begin = (nonce: string | undefined): void => {
        current?.mux.close();
        const stream = new SessionStream(writer);
        stream.on("error", () => undefined);
        if (nonce !== undefined) stream.write(resetMarker(nonce));
        const mux: Mux = new Mux(
          stream,
          {
            onOpen: (channel, request) => handlers.onOpen(channel, request),
            onConnectionControl: (message) => {
              if (message.type === "reset" && typeof message.nonce === "string") {
                // A host repeats its reset until it sees the marker: once is enough.
                if (latestNonce === message.nonce) return;
                latestNonce = message.nonce;
                // After this frame, nothing more of this session is read (the host waits).
                queueMicrotask(() => begin(String(message.nonce)));
                return;
              }
              if (message.type !== "request") return;
              const id = message.id;
              const request = message.request;
              if (typeof request !== "object" || request === null || Array.isArray(request)) return;
              const type = "type" in request ? request.type : undefined;
              handlers.onRequest({ ...request, type: String(type) }).then(
                (response) => mux.connectionControl({ type: "response", id, ok: true, response }),
                (error: unknown) =>
                  mux.connectionControl({
                    type: "response",
                    id,
                    ok: false,
                    message: error instanceof Error ? error.message : String(error),
                  }),
              );
            },
          },
          "server",
        );
        mux.hello(handlers.hello());
        current = { stream, mux, nonce };
      };
      try {
        // Blocks until a host is connected (see above); an empty line is skipped by the host.
        await writer.write(Buffer.from("\n"));
        begin(undefined);
        const buffer = Buffer.alloc(READ_BYTES);
        for (;;) {
          const bytes = await readPort(fd, buffer);
          if (bytes === 0) break;
          current?.stream.push(Buffer.from(buffer.subarray(0, bytes)));
        }
      } catch (error) {
        process.stderr.write(`polydev microvm agent: port: ${String(error)}\n`);
      }
      current?.mux.close();
      await new Promise<void>((resolve) => close(fd, () => resolve()));
    }
  };
  loop().catch((error: unknown) => {
    process.stderr.write(`polydev microvm agent: ${String(error)}\n`);
    process.exit(1);
  });
}
