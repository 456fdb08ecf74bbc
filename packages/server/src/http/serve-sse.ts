/**
 * Once an SSE stream has started, its status line is gone: a failure can no longer become an
 * error answer, and Fastify only logs it and leaves the client waiting forever. Every SSE route
 * produces its events through `serveSse`, which ends a failed stream with an `error` event
 * (`{ code, message }`, as an error answer's body) and closes it.
 */
import { PolydevError } from "@polydev/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import { toPolydevError } from "./error-handler.js";
import type { SseStream } from "./sse.js";
import { openSse } from "./sse.js";

export async function serveSse(
  request: FastifyRequest,
  reply: FastifyReply,
  produce: (sse: SseStream) => Promise<void>,
): Promise<FastifyReply> {
  const sse = openSse(request, reply);
  try {
    await produce(sse);
  } catch (error) {
    await sse.send("error", streamFailure(error, request).toJSON().error);
  } finally {
    sse.end();
  }
  return reply;
}

/** What a stream that failed midway tells its client; anything unknown is logged as a bug. */
export function streamFailure(error: unknown, request: FastifyRequest): PolydevError {
  const known = toPolydevError(error);
  if (known && known.code !== "internal") return known;
  request.log.error({ err: error }, "stream failed unexpectedly");
  return new PolydevError("internal", "the stream failed; the server log has the details");
}
