/** The SNI and Host readers, on a real ClientHello (captured from node:tls) and HTTP heads. */
import { createServer } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { describe, expect, it } from "vitest";
import { readHttpRequestHead } from "./http-request-head.js";
import { readClientHello } from "./tls-client-hello.js";

/** The first flight of a real TLS client for `servername`. */
async function captureClientHello(servername: string | undefined): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  const captured = new Promise<Buffer>((resolve) => {
    server.once("connection", (socket) => {
      socket.once("data", (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
      });
    });
  });
  const client = tlsConnect({ host: "127.0.0.1", port: address.port, servername, rejectUnauthorized: false });
  client.on("error", () => client.destroy());
  const hello = await captured;
  server.close();
  return hello;
}

/** The same handshake message re-framed as two TLS records. */
function splitIntoTwoRecords(hello: Buffer): Buffer {
  const body = hello.subarray(5);
  const cut = 40;
  const record = (part: Buffer) =>
    Buffer.concat([Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]), part]);
  return Buffer.concat([record(body.subarray(0, cut)), record(body.subarray(cut))]);
}

describe("readClientHello", () => {
  it("reads the SNI of a real ClientHello, whole, over two records, and byte by byte", async () => {
    const hello = await captureClientHello("registry.example.com");
    expect(readClientHello(hello)).toEqual({ kind: "client_hello", serverName: "registry.example.com" });
    const split = splitIntoTwoRecords(hello);
    expect(readClientHello(split)).toEqual({ kind: "client_hello", serverName: "registry.example.com" });
    for (let length = 0; length < split.length; length += 1) {
      expect(readClientHello(split.subarray(0, length)).kind).toBe("incomplete");
    }
  });

  it("says when there is no SNI, and when the bytes are not TLS", async () => {
    expect(readClientHello(await captureClientHello(undefined))).toEqual({
      kind: "client_hello",
      serverName: undefined,
    });
    expect(readClientHello(Buffer.from("GET / HTTP/1.1\r\n")).kind).toBe("not_tls");
    expect(readClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).kind).toBe("not_tls");
    // A truncated hello inside a complete record: a hello without a readable SNI, no throw.
    const broken = Buffer.from([
      0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0xff, 0xff,
    ]);
    expect(readClientHello(broken)).toEqual({ kind: "client_hello", serverName: undefined });
  });
});

describe("readHttpRequestHead", () => {
  const head = (text: string) => readHttpRequestHead(Buffer.from(text, "latin1"));

  it("reads the Host, without port, lower case", () => {
    expect(head("GET /x HTTP/1.1\r\nUser-Agent: t\r\nHOST: Registry.Example.com:8080\r\n\r\n")).toEqual({
      kind: "http_request",
      host: "registry.example.com",
      conflicting: false,
    });
    expect(head("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n")).toMatchObject({ host: "2001:db8::1" });
  });

  it("waits for the whole head, and tells other protocols apart", () => {
    expect(head("GE").kind).toBe("incomplete");
    expect(head("GET / HTTP/1.1\r\nHost: a.example").kind).toBe("incomplete");
    expect(head("SSH-2.0-OpenSSH_9.2\r\n").kind).toBe("not_http");
    expect(head("\x16\x03\x01").kind).toBe("not_http");
  });

  it("uses the target's authority of absolute-form and CONNECT requests, and flags disagreement", () => {
    expect(head("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n")).toMatchObject({
      host: "a.example",
      conflicting: false,
    });
    expect(head("GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n")).toMatchObject({
      conflicting: true,
    });
    expect(head("CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n")).toMatchObject({
      host: "b.example",
      conflicting: false,
    });
    expect(head("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")).toMatchObject({
      conflicting: true,
    });
  });
});
