/**
 * Server-Sent Events on a raw response with back-pressure: `send` resolves only once the socket
 * has taken the bytes, so a slow client slows the producer instead of growing a buffer.
 */
import type { FastifyReply, FastifyRequest } from "fastify";

export interface SseStream {
  send(event: string, data: unknown, id?: string | number): Promise<void>;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
  end(): void;
}

const KEEP_ALIVE_MS = 15_000;

export function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? "").includes("text/event-stream");
}

export function openSse(_request: FastifyRequest, reply: FastifyReply): SseStream {
  const controller = new AbortController();
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  raw.flushHeaders();
  const keepAlive = setInterval(() => raw.write(": keep-alive\n\n"), KEEP_ALIVE_MS);
  keepAlive.unref();
  const onClose = (): void => {
    clearInterval(keepAlive);
    controller.abort();
  };
  // The response's own close fires when the client goes away or the stream ends; a listener on
  // the socket would pile up on keep-alive connections.
  raw.once("close", onClose);

  return {
    signal: controller.signal,
    send(event, data, id) {
      if (controller.signal.aborted) return Promise.resolve();
      const lines = [`event: ${event}`];
      if (id !== undefined) lines.push(`id: ${id}`);
      lines.push(`data: ${JSON.stringify(data)}`, "", "");
      if (raw.write(lines.join("\n"))) return Promise.resolve();
      return new Promise((resolve) => {
        const done = (): void => {
          raw.off("drain", done);
          controller.signal.removeEventListener("abort", done);
          resolve();
        };
        raw.once("drain", done);
        controller.signal.addEventListener("abort", done, { once: true });
      });
    },
    end() {
      clearInterval(keepAlive);
      if (!raw.writableEnded) raw.end();
    },
  };
}
