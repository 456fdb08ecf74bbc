/**
 * Answers to requests Node's HTTP parser refused before Fastify saw them (a bad request line,
 * headers too large, a malformed header or body framing, a request that took too long). There is
 * no request or reply object then, only the socket, so the answer is written by hand: a complete
 * HTTP/1.1 response in our `{ error: { code, message } }` shape, and the connection closed, since
 * nothing after the bad bytes can be trusted to start a request.
 */
import { maxHeaderSize, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { PolydevError } from "@polydev/core";
import type { ConnectionError } from "fastify";
import type { Logger } from "pino";

/** How long a refused client gets to read the answer before the socket is torn down. */
const LINGER_MS = 2_000;

export function clientErrorAnswer(error: Pick<ConnectionError, "code" | "message">): PolydevError {
  switch (error.code) {
    case "HPE_HEADER_OVERFLOW":
      return new PolydevError(
        "headers_too_large",
        `the request line and headers are larger than ${maxHeaderSize} bytes; send less in headers (put data in the body)`,
      );
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return new PolydevError(
        "request_timeout",
        "the request was not received in time; send the request line, headers and body without pausing",
      );
    default:
      return new PolydevError(
        "invalid_request",
        `the request is not valid HTTP/1.1 (${error.code}); check the request line, headers and body framing`,
      );
  }
}

/** A response is already on its way on this socket: appending another would corrupt it. */
function responseInFlight(socket: Duplex): boolean {
  const current: unknown = Reflect.get(socket, "_httpMessage");
  return typeof current === "object" && current !== null && Reflect.get(current, "headersSent") === true;
}

/** Node's parser can report the same broken connection again for every later chunk. */
const answered = new WeakSet<Duplex>();

export function clientErrorHandler(log: Logger): (error: ConnectionError, socket: Duplex) => void {
  return (error, socket) => {
    // A reset connection has nobody left to answer.
    if (error.code === "ECONNRESET" || socket.destroyed) return;
    if (answered.has(socket)) return;
    answered.add(socket);
    if (!socket.writable || responseInFlight(socket)) {
      socket.destroy();
      return;
    }
    const answer = clientErrorAnswer(error);
    log.debug({ code: error.code, status: answer.status }, "refused a malformed request");
    const body = JSON.stringify(answer.toJSON());
    const head = [
      `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? "Error"}`,
      "Content-Type: application/json; charset=utf-8",
      `Content-Length: ${Buffer.byteLength(body)}`,
      "Connection: close",
      "",
      "",
    ].join("\r\n");
    // end(), not destroy(): the answer then goes out before the FIN, and a client still sending
    // gets to read it rather than a reset. The timer bounds how long a silent client may linger.
    socket.end(head + body);
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
  };
}
