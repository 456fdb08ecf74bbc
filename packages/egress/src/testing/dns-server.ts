/**
 * A real DNS server on loopback (UDP and TCP, one port) for the guard's resolver in tests:
 * answers A queries from a table the test edits, and counts every query it receives, so a
 * test can prove a name was never looked up.
 */
import { createSocket } from "node:dgram";
import { createServer, type Server } from "node:net";
import dnsPacket from "dns-packet";

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, as `dnsServers` takes it. */
  readonly server: string;
  /** name -> IPv4 addresses; a name not here gets NXDOMAIN. */
  readonly records: Map<string, string[]>;
  /** Lower-case names queried, in order. */
  readonly queried: string[];
  close(): Promise<void>;
}

function answer(query: Buffer, records: Map<string, string[]>, queried: string[]): Buffer {
  const packet = dnsPacket.decode(query);
  const question = packet.questions?.[0];
  const name = question?.name.toLowerCase() ?? "";
  queried.push(name);
  const addresses = records.get(name);
  return dnsPacket.encode({
    type: "response",
    id: packet.id ?? 0,
    flags: dnsPacket.RECURSION_AVAILABLE | (addresses === undefined ? 3 : 0),
    questions: question === undefined ? [] : [question],
    answers:
      question?.type === "A"
        ? (addresses ?? []).map((data) => ({
            type: "A" as const,
            class: "IN" as const,
            name: question.name,
            ttl: 300,
            data,
          }))
        : [],
  });
}

export async function startTestDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, string[]>();
  const queried: string[] = [];
  const tcp: Server = createServer((socket) => {
    let buffered = Buffer.alloc(0);
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const query = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + query.length);
        const response = answer(query, records, queried);
        const frame = Buffer.alloc(2);
        frame.writeUInt16BE(response.length);
        socket.write(Buffer.concat([frame, response]));
      }
    });
  });
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  const address = tcp.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  const udp = createSocket("udp4");
  udp.on("message", (query, remote) => {
    udp.send(answer(query, records, queried), remote.port, remote.address);
  });
  await new Promise<void>((resolve) => udp.bind(address.port, "127.0.0.1", resolve));
  return {
    server: `127.0.0.1:${address.port}`,
    records,
    queried,
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}
