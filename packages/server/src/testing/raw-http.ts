/**
 * HTTP/1.1 over a bare TCP socket, for tests that need what no HTTP client will send: broken
 * request lines, oversized headers, several requests on one keep-alive connection with bodies
 * the server may refuse to read.
 */
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
}

export interface RawExchange {
  responses: RawResponse[];
  /** The server closed the connection (FIN or reset). */
  closed: boolean;
  /** Neither enough answers nor a close came within the wait. */
  timedOut: boolean;
}

/** Parses as many complete responses as `buffer` holds; returns them and the bytes left over. */
function parseResponses(buffer: Buffer): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let rest = buffer;
  for (;;) {
    const headEnd = rest.indexOf("\r\n\r\n");
    if (headEnd < 0) break;
    const [statusLine = "", ...headerLines] = rest.subarray(0, headEnd).toString("latin1").split("\r\n");
    const status = Number(statusLine.split(" ")[1]);
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let body: Buffer;
    let next: number;
    const start = headEnd + 4;
    if (headers["transfer-encoding"]?.includes("chunked")) {
      const parts: Buffer[] = [];
      let at = start;
      let complete = false;
      for (;;) {
        const lineEnd = rest.indexOf("\r\n", at);
        if (lineEnd < 0) break;
        const size = Number.parseInt(rest.subarray(at, lineEnd).toString("latin1"), 16);
        if (rest.length < lineEnd + 2 + size + 2) break;
        parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
        if (size === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
      body = Buffer.concat(parts);
      next = at;
    } else {
      const length = Number(headers["content-length"] ?? 0);
      if (rest.length < start + length) break;
      body = rest.subarray(start, start + length);
      next = start + length;
    }
    responses.push({ status, headers, body: body.toString("utf8") });
    rest = rest.subarray(next);
  }
  return { responses, rest };
}

/**
 * Writes `chunks` on one fresh connection and collects answers until `expect` of them came, the
 * server closed the connection, or `waitMs` passed.
 */
export function rawExchange(
  url: string,
  chunks: (string | Buffer)[],
  options: { expect: number; waitMs?: number },
): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  const responses: RawResponse[] = [];
  let pending: Buffer = Buffer.alloc(0);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (closed: boolean, timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ responses, closed, timedOut });
    };
    const timer = setTimeout(() => finish(false, true), options.waitMs ?? 10_000);
    socket.on("data", (data: Buffer) => {
      const parsed = parseResponses(Buffer.concat([pending, data]));
      responses.push(...parsed.responses);
      pending = parsed.rest;
      if (responses.length >= options.expect) finish(false, false);
    });
    // A reset after the answers were read is how a server closes on a client still sending.
    socket.on("error", () => finish(true, false));
    socket.on("close", () => finish(true, false));
    // Writes go out one after another; the server may close before the last is taken.
    for (const chunk of chunks) socket.write(chunk, () => undefined);
  });
}
