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
    // A reader that gave up destroyed the body (an unpack past its limit): Node's parser stops
    // reading a socket whose request is destroyed, so that connection must not carry another
    // request whatever the body's size.
    if (raw.destroyed) {
      reply.header("connection", "close");
      return payload;
    }
    const declared = declaredBodyBytes(raw);
    if (declared === 0) return payload;
    if (declared === "unknown" || declared > DRAIN_LIMIT_BYTES) {
      reply.header("connection", "close");
      return payload;
    }
    // Fastify answers a body over the route's limit before reading it, with `Connection: close`:
    // closing a socket the client is still writing to resets it, and the client often sees EPIPE
    // instead of the 413. A small body is read to its end instead, and the connection kept.
    reply.removeHeader("connection");
    drain(raw);
    return payload;
  });
}
