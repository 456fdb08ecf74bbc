/**
 * Answers to requests refused below the routes, which Node or `ws` would otherwise answer in
 * their own words (an empty 400, plain text, HTML): requests Node's parser refused (a bad request
 * line, headers too large, broken body framing, a request that took too long), HTTP/1.1 without
 * a Host, an unknown `Expect`, a broken WebSocket handshake. Every one gets our
 * `{ error: { code, message } }` shape. Where no request object exists, only the socket, the
 * answer is written by hand and the connection closed: nothing after bad bytes can be trusted to
 * start a request.
 */
import type { ServerResponse } from "node:http";
import { maxHeaderSize, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { PolydevError } from "@polydev/core";
import type { ConnectionError, FastifyInstance } from "fastify";
import type { Logger } from "pino";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route serves WebSocket upgrades; every other route refuses them. */
    webSocket?: boolean;
  }
}

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

/** Writes a whole HTTP/1.1 answer on a bare socket, then closes it. */
export function answerOnSocket(
  socket: Duplex,
  answer: PolydevError,
  headers: Record<string, string> = {},
): void {
  if (socket.destroyed || answered.has(socket)) return;
  answered.add(socket);
  if (!socket.writable || responseInFlight(socket)) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(answer.toJSON());
  const head = [
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? "Error"}`,
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
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
}

export function clientErrorHandler(log: Logger): (error: ConnectionError, socket: Duplex) => void {
  return (error, socket) => {
    // A reset connection has nobody left to answer.
    if (error.code === "ECONNRESET" || socket.destroyed) return;
    const answer = clientErrorAnswer(error);
    log.debug({ code: error.code, status: answer.status }, "refused a malformed request");
    answerOnSocket(socket, answer);
  };
}

function answerOnResponse(response: ServerResponse, answer: PolydevError): void {
  const body = JSON.stringify(answer.toJSON());
  response.writeHead(answer.status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    connection: "close",
  });
  response.end(body);
}

/**
 * Needs @fastify/websocket registered first (for its server and `request.ws`), and the server
 * created with `http: { requireHostHeader: false }` so that a missing Host reaches the hook here.
 */
export function registerProtocolChecks(app: FastifyInstance): void {
  // Without a listener Node answers an unknown expectation with an empty 417.
  app.server.on("checkExpectation", (request, response: ServerResponse) => {
    answerOnResponse(
      response,
      new PolydevError(
        "expectation_failed",
        `the expectation "${String(request.headers.expect).slice(0, 100)}" is not supported; only 100-continue is`,
      ),
    );
  });
  // Handshakes `ws` refuses (a bad key, version or protocol list, a method other than GET, an
  // Upgrade other than websocket) would get its HTML page.
  app.websocketServer.on("wsClientError", (error: Error, socket: Duplex) => {
    const code = /method/i.test(error.message) ? "method_not_allowed" : "invalid_request";
    answerOnSocket(
      socket,
      new PolydevError(code, `the WebSocket handshake was refused: ${error.message}`),
      error.message.includes("Version") ? { "Sec-WebSocket-Version": "13, 8" } : {},
    );
  });
  app.addHook("onRequest", async (request) => {
    if (request.raw.httpVersion === "1.1" && request.headers.host === undefined) {
      throw new PolydevError("invalid_request", "HTTP/1.1 requests must carry a Host header");
    }
    // A route found, and not one that upgrades: refused before a 101 that would be closed at once.
    if (
      request.ws &&
      request.routeOptions.url !== undefined &&
      request.routeOptions.config.webSocket !== true
    ) {
      throw new PolydevError(
        "invalid_request",
        `${request.routeOptions.url} is not a WebSocket; send a plain request`,
      );
    }
  });
}
