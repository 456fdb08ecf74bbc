/**
 * Test helpers that speak HTTP/1.1 byte for byte. `fetch` and `http.request` normalise or refuse
 * the very request targets a hostile sandbox sends (`//host`, `\`, `..`, tabs, absolute forms), so
 * probes of the gateway write their request line themselves.
 */
import type { IncomingHttpHeaders, Server, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends `head` (request line and headers, without the blank line) and optional body bytes. */
export function rawRequest(port: number, head: string, body: Buffer | string = ""): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (error) {
        reject(error);
      }
    });
    socket.write(`${head}\r\nconnection: close\r\n\r\n`);
    socket.write(body);
  });
}

/**
 * Opens a request and leaves its body unfinished: `send` writes more, `response` settles once the
 * server answers and closes, `close` hangs up.
 */
export function openRawRequest(
  port: number,
  head: string,
): { send(bytes: Buffer | string): void; response: Promise<RawResponse>; close(): void } {
  const socket = connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  const response = new Promise<RawResponse>((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    // The server may cut the connection while bytes are still on their way: the answer counts.
    socket.on("error", () => undefined);
    socket.on("close", () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (error) {
        reject(error);
      }
    });
  });
  // A test that hangs up itself never reads the answer; that is not an unhandled failure.
  response.catch(() => undefined);
  socket.write(`${head}\r\nconnection: close\r\n\r\n`);
  return {
    send: (bytes) => {
      if (!socket.destroyed) socket.write(bytes);
    },
    response,
    close: () => socket.destroy(),
  };
}

function parseResponse(raw: Buffer): RawResponse {
  // Interim answers (`100 Continue`) come first; the response is the last head.
  while (/^HTTP\/1\.[01] 1\d\d /.test(raw.toString("latin1", 0, 16))) {
    const end = raw.indexOf("\r\n\r\n");
    if (end < 0) break;
    raw = raw.subarray(end + 4);
  }
  const text = raw.toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) throw new Error(`no HTTP response (got ${JSON.stringify(text.slice(0, 200))})`);
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(Buffer.byteLength(text.slice(0, end + 4), "latin1"));
  if (headers["transfer-encoding"] === "chunked") body = dechunk(body);
  return { status, headers, body: body.toString("utf8") };
}

function dechunk(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = raw.indexOf("\r\n", at);
    if (lineEnd < 0) break;
    const size = Number.parseInt(raw.subarray(at, lineEnd).toString("latin1"), 16);
    if (!(size > 0)) break;
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

export interface RecordedHit {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A loopback server that records every request it gets; `answer` decides the reply. */
export async function startRecorder(
  answer: (hit: RecordedHit, res: ServerResponse) => void = (_hit, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("recorded");
  },
): Promise<{ server: Server; port: number; url: string; hits: RecordedHit[]; close(): Promise<void> }> {
  const hits: RecordedHit[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const hit = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      hits.push(hit);
      answer(hit, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
