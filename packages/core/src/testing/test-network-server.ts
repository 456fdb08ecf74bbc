/**
 * The test host of a test network (see test-network.ts): runs inside the test's network namespace
 * (`ip netns exec`), so it may take the well-known ports. HTTP on 80 and HTTPS on 443 answer
 * `hello from <Host>` (or N bytes for `/bytes/N`), DNS on UDP and TCP 53 answers A queries from
 * the zone, UDP 7 echoes. It records what reached it and tells the fixture over the IPC channel;
 * it exits when that channel closes, so a test process that dies takes its test host with it.
 */
import type { Socket as UdpSocket } from "node:dgram";
import { createSocket } from "node:dgram";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket, Server as TcpServer } from "node:net";
import { createServer as createTcpServer } from "node:net";
import { TLSSocket } from "node:tls";
import type { Answer, Packet } from "dns-packet";
import dnsPacket from "dns-packet";
import type {
  TestNetworkControl,
  TestNetworkDatagram,
  TestNetworkDnsQuery,
  TestNetworkReply,
  TestNetworkRequest,
  TestNetworkServerConfig,
} from "./test-network-protocol.js";

/** A test host records at most this many of each kind (a runaway test cannot grow it unbounded). */
const RECORD_LIMIT = 10_000;
/** The largest `/bytes/N` body (the throughput benchmark downloads tens of MiB). */
const BYTES_LIMIT = 1024 ** 3;
/** A DNS-over-TCP client may buffer at most one maximal message and its length prefix. */
const DNS_TCP_BUFFER_LIMIT = 65_537;
const RCODE_NXDOMAIN = 3;
const FILLER = Buffer.alloc(64 * 1024, "x");

const requests: TestNetworkRequest[] = [];
const dnsQueries: TestNetworkDnsQuery[] = [];
const datagrams: TestNetworkDatagram[] = [];
let zone = new Map<string, string[]>();

function record<T>(list: T[], entry: T): void {
  if (list.length < RECORD_LIMIT) list.push(entry);
}

function plainAddress(address: string | undefined): string {
  return (address ?? "").replace(/^::ffff:/, "");
}

function setZone(entries: Record<string, string[]>): void {
  zone = new Map(Object.entries(entries).map(([name, addresses]) => [normalizeName(name), addresses]));
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

function send(reply: TestNetworkReply): void {
  process.send?.(reply);
}

// ---- HTTP and HTTPS ----

function handle(protocol: "http" | "https", request: IncomingMessage, response: ServerResponse): void {
  const host = request.headers.host ?? "";
  const socket = request.socket;
  const sni = socket instanceof TLSSocket && typeof socket.servername === "string" ? socket.servername : null;
  record(requests, {
    protocol,
    method: request.method ?? "",
    host,
    path: request.url ?? "",
    remoteAddress: plainAddress(socket.remoteAddress),
    sni,
  });
  const bytes = /^\/bytes\/(\d+)$/.exec(request.url ?? "");
  if (bytes?.[1] !== undefined) {
    const total = Number(bytes[1]);
    if (total > BYTES_LIMIT) {
      response.writeHead(413).end(`at most ${BYTES_LIMIT} bytes\n`);
      return;
    }
    response.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(total) });
    streamFiller(response, total);
    return;
  }
  response.writeHead(200, { "content-type": "text/plain" }).end(`hello from ${host}`);
}

/** Writes `total` filler bytes with backpressure, so a slow reader does not grow this process. */
function streamFiller(response: ServerResponse, total: number): void {
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const chunk = left >= FILLER.length ? FILLER : FILLER.subarray(0, left);
      left -= chunk.length;
      if (!response.write(chunk)) {
        response.once("drain", pump);
        return;
      }
    }
    response.end();
  };
  pump();
}

// ---- DNS ----

function answerQuery(query: Packet, transport: "udp" | "tcp", remoteAddress: string): Packet {
  const question = query.questions?.[0];
  const base: Packet = {
    type: "response",
    id: query.id ?? 0,
    questions: query.questions ?? [],
  };
  const flags = dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED);
  if (!question) return { ...base, flags };
  const name = normalizeName(question.name);
  record(dnsQueries, { name, type: question.type, transport, remoteAddress });
  const addresses = zone.get(name);
  if (addresses === undefined) return { ...base, flags: flags | RCODE_NXDOMAIN };
  // A name in the zone exists: other record types are empty answers (NOERROR), not NXDOMAIN.
  const answers: Answer[] =
    question.type === "A"
      ? addresses.map((address) => ({ type: "A", class: "IN", name: question.name, ttl: 60, data: address }))
      : [];
  return { ...base, flags, answers };
}

function decodeQuery(message: Buffer): Packet | undefined {
  try {
    const packet = dnsPacket.decode(message);
    return packet.type === "query" ? packet : undefined;
  } catch {
    return undefined;
  }
}

function serveDnsUdp(socket: UdpSocket): void {
  socket.on("message", (message, remote) => {
    const query = decodeQuery(message);
    if (!query) return;
    socket.send(
      dnsPacket.encode(answerQuery(query, "udp", plainAddress(remote.address))),
      remote.port,
      remote.address,
    );
  });
}

function serveDnsTcp(connection: Socket): void {
  let buffered = Buffer.alloc(0);
  connection.on("error", () => connection.destroy());
  connection.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (buffered.length > DNS_TCP_BUFFER_LIMIT) {
      connection.destroy();
      return;
    }
    while (buffered.length >= 2) {
      const length = buffered.readUInt16BE(0);
      if (buffered.length < 2 + length) return;
      const query = decodeQuery(buffered.subarray(2, 2 + length));
      buffered = buffered.subarray(2 + length);
      if (!query) {
        connection.destroy();
        return;
      }
      connection.write(
        dnsPacket.streamEncode(answerQuery(query, "tcp", plainAddress(connection.remoteAddress))),
      );
    }
  });
}

// ---- start-up and control ----

function listen(server: TcpServer, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "0.0.0.0", () => resolve());
  });
}

function bind(socket: UdpSocket, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, "0.0.0.0", () => resolve());
  });
}

async function start(config: TestNetworkServerConfig): Promise<void> {
  setZone(config.zone);
  const http = createHttpServer((request, response) => handle("http", request, response));
  const https = createHttpsServer({ key: config.keyPem, cert: config.certPem }, (request, response) =>
    handle("https", request, response),
  );
  const dnsTcp = createTcpServer(serveDnsTcp);
  const dnsUdp = createSocket("udp4");
  serveDnsUdp(dnsUdp);
  const echo = createSocket("udp4");
  echo.on("message", (message, remote) => {
    record(datagrams, { remoteAddress: plainAddress(remote.address), bytes: message.length });
    echo.send(message, remote.port, remote.address);
  });
  await Promise.all([
    listen(http, config.httpPort),
    listen(https, config.httpsPort),
    listen(dnsTcp, config.dnsPort),
    bind(dnsUdp, config.dnsPort),
    bind(echo, config.udpEchoPort),
  ]);
  // A failed send to one client (it went away) must not end the test host.
  for (const socket of [dnsUdp, echo]) socket.on("error", () => undefined);
}

process.on("disconnect", () => process.exit(0));
process.on("message", (message: TestNetworkControl) => {
  if (message.type === "start") {
    start(message.config).then(
      () => send({ type: "ready" }),
      (error: unknown) =>
        send({ type: "failed", message: error instanceof Error ? error.message : String(error) }),
    );
  } else if (message.type === "records") {
    send({ type: "records", id: message.id, requests, dnsQueries, datagrams });
  } else if (message.type === "zone") {
    setZone(message.zone);
    send({ type: "zone-set", id: message.id });
  }
});
