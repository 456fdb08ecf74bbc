/**
 * An answer can leave before the request's body was read: an upload refused for a missing key, a
 * foreign sandbox or a bad path, or one that failed half-way. The rest of that body is still on
 * the connection, ahead of the client's next request, and Node reads no further until someone
 * consumes it: the next request on that keep-alive connection was never answered. Node drains
 * only bodies nobody ever touched, and then without limit.
 *
 * So, for every answer, in one place: a body of known size up to DRAIN_LIMIT_BYTES is read and
 * discarded, and the connection stays usable; a bigger or chunked one is not worth reading, the
 * answer says `Connection: close`, and Node closes the socket once it is sent. A client that does
 * not finish sending what is drained within DRAIN_TIMEOUT_MS loses the connection: an answered
 * request must not hold one open (before a key is even checked) by trickling its body.
 */
import type { IncomingMessage } from "node:http";
import type { FastifyInstance } from "fastify";

export const DRAIN_LIMIT_BYTES = 4 * 1024 * 1024;
export const DRAIN_TIMEOUT_MS = 5_000;

function declaredBodyBytes(request: IncomingMessage): number | "unknown" {
  if (request.headers["transfer-encoding"] !== undefined) return "unknown";
  const length = Number(request.headers["content-length"] ?? 0);
  return Number.isFinite(length) ? length : "unknown";
}

/** Discards whatever is left of the body, whoever was reading it before. */
function drain(request: IncomingMessage): void {
  request.unpipe();
  request.removeAllListeners("data");
  request.on("error", () => undefined);
  const socket = request.socket;
  const timer = setTimeout(() => socket.destroy(), DRAIN_TIMEOUT_MS);
  timer.unref();
  const done = (): void => clearTimeout(timer);
  request.once("end", done);
  request.once("close", done);
  request.resume();
}

export function registerUnreadBodyGuard(app: FastifyInstance): void {
  app.addHook("onSend", async (request, reply, payload) => {
    const raw = request.raw;
    if (raw.readableEnded) return payload;
    const declared = declaredBodyBytes(raw);
    // A reader that gave up destroyed the body (an unpack past its limit): what is left of a big
    // or chunked one can no longer be read, so the connection must not carry another request. A
    // small one (a JSON body over its route's limit) is left as before: closing while the client
    // still sends it would cut the client off before it reads the answer.
    if (raw.destroyed) {
      if (declared === "unknown" || declared > DRAIN_LIMIT_BYTES) reply.header("connection", "close");
      return payload;
    }
    if (declared === 0) return payload;
    if (declared === "unknown" || declared > DRAIN_LIMIT_BYTES) {
      reply.header("connection", "close");
      return payload;
    }
    // Fastify closes after a body it failed to parse; that stands.
    if (String(reply.getHeader("connection") ?? "").toLowerCase() !== "close") drain(raw);
    return payload;
  });
}
