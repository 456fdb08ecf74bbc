/**
 * The guard against real things: sandbox-side sockets on loopback, the guard's resolver
 * talking to a real DNS server on loopback, and destinations in a network namespace the test
 * creates (see testing/test-world.ts), reached by real routing.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { EgressDestination } from "@polydev/core";
import dnsPacket from "dns-packet";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EgressAuditEvent } from "./audit.js";
import { EgressGuard, type EgressGuardOptions } from "./egress-guard.js";
import { type CompiledEgressRules, compileEgressRules } from "./rules.js";
import { startTestDnsServer, type TestDnsServer } from "./testing/dns-server.js";
import { startTestWorld, type TestWorld } from "./testing/test-world.js";

let world: TestWorld;
let dns: TestDnsServer;
let pairServer: Server;
const pairSockets = new Set<Socket>();
const pendingGuardSides: ((socket: Socket) => void)[] = [];

beforeAll(async () => {
  world = await startTestWorld();
  dns = await startTestDnsServer();
  // Half-open like an agent-protocol channel: the sandbox may end its side and still read.
  pairServer = createServer({ allowHalfOpen: true }, (socket) => {
    pairSockets.add(socket);
    socket.on("close", () => pairSockets.delete(socket));
    pendingGuardSides.shift()?.(socket);
  });
  await new Promise<void>((resolve) => pairServer.listen(0, "127.0.0.1", resolve));
});

afterAll(async () => {
  world?.close();
  await dns?.close();
  for (const socket of pairSockets) socket.destroy();
  await new Promise<void>((resolve) => (pairServer ? pairServer.close(() => resolve()) : resolve()));
});

beforeEach(() => {
  dns.records.clear();
  dns.queried.length = 0;
  dns.records.set("public.test.example", [world.publicAddress]);
  dns.records.set("second.test.example", [world.publicAddress]);
  dns.records.set("elsewhere.test.example", ["203.0.113.77"]);
  dns.records.set("loop.test.example", ["127.0.0.1"]);
  dns.records.set("private.test.example", [world.privateAddress]);
  dns.records.set("mixed.test.example", [
    "127.0.0.1",
    "169.254.169.254",
    world.privateAddress,
    world.publicAddress,
  ]);
});

/** A sandbox as the guard sees it: its rules can change, its audit events are collected. */
function testSandbox(allow: string[], deny: string[] = []) {
  let rules = compileEgressRules({ allow, deny });
  const events: EgressAuditEvent[] = [];
  const waiters: (() => void)[] = [];
  return {
    id: `sandbox-${Math.random()}`,
    events,
    rules: (): CompiledEgressRules => rules,
    setRules(nextAllow: string[], nextDeny: string[] = []): void {
      rules = compileEgressRules({ allow: nextAllow, deny: nextDeny });
    },
    onAudit(event: EgressAuditEvent): void {
      events.push(event);
      for (const wake of waiters.splice(0)) wake();
    },
    /** The `count`-th audit event (1-based), once it happened. */
    async nextEvent(count: number): Promise<EgressAuditEvent> {
      while (events.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
      const event = events[count - 1];
      if (event === undefined) throw new Error("no event");
      return event;
    },
  };
}
type TestSandbox = ReturnType<typeof testSandbox>;

function newGuard(options: EgressGuardOptions = {}): EgressGuard {
  return new EgressGuard({ dnsServers: [dns.server], peekTimeoutMs: 300, ...options });
}

/** A connection as a sandbox process would make it; the other end goes to the guard. */
async function intercepted(
  guard: EgressGuard,
  sandbox: TestSandbox,
  destination: EgressDestination,
): Promise<Socket> {
  const guardSide = new Promise<Socket>((resolve) => pendingGuardSides.push(resolve));
  const address = pairServer.address();
  if (address === null || typeof address === "string") throw new Error("no pair address");
  const client = tcpConnect(address.port, "127.0.0.1");
  client.on("error", () => client.destroy());
  guard.handle(await guardSide, destination, sandbox);
  return client;
}

function readAll(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("close", () => resolve(Buffer.concat(chunks).toString()));
  });
}

async function httpGet(
  guard: EgressGuard,
  sandbox: TestSandbox,
  address: string,
  host: string,
): Promise<string> {
  const socket = await intercepted(guard, sandbox, { kind: "tcp", address, port: 80 });
  socket.write(`POST / HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`);
  return readAll(socket);
}

/** TLS through the guard; resolves with what the server said, or "closed" when refused. */
async function tlsTalk(
  guard: EgressGuard,
  sandbox: TestSandbox,
  address: string,
  servername: string,
): Promise<string> {
  const socket = await intercepted(guard, sandbox, { kind: "tcp", address, port: 443 });
  return new Promise((resolve) => {
    const tls = tlsConnect({ socket, servername, rejectUnauthorized: false });
    let received = "";
    tls.on("secureConnect", () => tls.write("hi"));
    tls.on("data", (chunk: Buffer) => {
      received += chunk.toString();
    });
    tls.on("error", () => tls.destroy());
    // A client done with the exchange closes its connection once the server ended its side.
    tls.on("end", () => tls.destroy());
    tls.on("close", () => resolve(received === "" ? "closed" : received));
  });
}

async function dnsQuery(
  guard: EgressGuard,
  sandbox: TestSandbox,
  name: string,
  type: "A" | "AAAA" | "TXT" = "A",
): Promise<dnsPacket.DecodedPacket & { rcode?: string }> {
  const socket = await intercepted(guard, sandbox, { kind: "dns", address: "10.0.2.3", port: 53 });
  const query = dnsPacket.encode({
    type: "query",
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
  const frame = Buffer.alloc(2);
  frame.writeUInt16BE(query.length);
  socket.write(Buffer.concat([frame, query]));
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve) => socket.on("close", () => resolve()));
  const response = Buffer.concat(chunks);
  expect(response.readUInt16BE(0)).toBe(response.length - 2);
  return dnsPacket.decode(response.subarray(2));
}

const answersOf = (packet: dnsPacket.DecodedPacket) =>
  (packet.answers ?? []).map((answer) => (answer.type === "A" ? answer.data : answer.type));

describe("EgressGuard: DNS", () => {
  it("answers an allowed name from the server's resolver and pins it", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["public.test.example"]);
    const response = await dnsQuery(guard, sandbox, "public.test.example");
    expect(response.rcode).toBe("NOERROR");
    expect(response.id).toBe(4242);
    expect(answersOf(response)).toEqual([world.publicAddress]);
    const [first] = response.answers ?? [];
    expect(first?.type === "A" ? first.ttl : undefined).toBeLessThanOrEqual(30);
    expect(sandbox.events[0]).toMatchObject({
      kind: "dns",
      host: "public.test.example",
      decision: "allowed",
      reason: "allowed_name",
    });
  });

  it("refuses a denied or unlisted name without looking it up", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["*.test.example"], ["second.test.example"]);
    expect((await dnsQuery(guard, sandbox, "second.test.example")).rcode).toBe("REFUSED");
    expect((await dnsQuery(guard, sandbox, "secret-data.attacker.example")).rcode).toBe("REFUSED");
    expect(dns.queried).toEqual([]);
    expect(sandbox.events.map((event) => [event.host, event.decision, event.reason])).toEqual([
      ["second.test.example", "denied", "dns_refused"],
      ["secret-data.attacker.example", "denied", "dns_refused"],
    ]);
  });

  it("drops loopback, metadata and private answers; REFUSED when nothing remains", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["*.test.example"]);
    expect((await dnsQuery(guard, sandbox, "loop.test.example")).rcode).toBe("REFUSED");
    expect((await dnsQuery(guard, sandbox, "private.test.example")).rcode).toBe("REFUSED");
    expect(answersOf(await dnsQuery(guard, sandbox, "mixed.test.example"))).toEqual([world.publicAddress]);
    expect(sandbox.events.map((event) => event.reason)).toEqual([
      "dns_private_answer",
      "dns_private_answer",
      "allowed_name",
    ]);
  });

  it("gives private answers only inside a listed private CIDR; * and 0.0.0.0/0 do not unlock them", async () => {
    const guard = newGuard();
    const wide = testSandbox(["*", "0.0.0.0/0"]);
    expect((await dnsQuery(guard, wide, "private.test.example")).rcode).toBe("REFUSED");
    const narrow = testSandbox(["*.test.example", "10.213.0.0/16"]);
    expect(answersOf(await dnsQuery(guard, narrow, "private.test.example"))).toEqual([world.privateAddress]);
    // Loopback stays out whatever is listed.
    const loopback = testSandbox(["*.test.example", "127.0.0.0/8"]);
    expect((await dnsQuery(guard, loopback, "loop.test.example")).rcode).toBe("REFUSED");
  });

  it("answers AAAA and other types empty, without a lookup", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["public.test.example"]);
    const aaaa = await dnsQuery(guard, sandbox, "public.test.example", "AAAA");
    expect([aaaa.rcode, aaaa.answers]).toEqual(["NOERROR", []]);
    const txt = await dnsQuery(guard, sandbox, "public.test.example", "TXT");
    expect([txt.rcode, txt.answers]).toEqual(["NOERROR", []]);
    expect(dns.queried).toEqual([]);
  });

  it("serves several queries over TCP to port 53, and survives garbage and huge frames", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["public.test.example"]);
    const socket = await intercepted(guard, sandbox, { kind: "tcp", address: "8.8.8.8", port: 53 });
    const frames = ["public.test.example", "other.example"].map((name, index) => {
      const query = dnsPacket.encode({ type: "query", id: index, questions: [{ type: "A", name }] });
      const length = Buffer.alloc(2);
      length.writeUInt16BE(query.length);
      return Buffer.concat([length, query]);
    });
    const garbage = Buffer.from([0, 20, ...Buffer.from("not a dns message!!!")]);
    const huge = Buffer.from([0xff, 0xff, 1, 2, 3]);
    const received = readAll(socket);
    socket.write(Buffer.concat([...frames, garbage, huge]));
    await received;
    expect(sandbox.events.map((event) => [event.kind, event.host, event.reason])).toEqual([
      ["dns", "public.test.example", "allowed_name"],
      ["dns", "other.example", "dns_refused"],
      ["dns", null, "dns_malformed"],
      ["dns", null, "dns_malformed"],
    ]);
    // The guard still works for the next connection.
    expect((await dnsQuery(guard, sandbox, "public.test.example")).rcode).toBe("NOERROR");
  });
});

describe("EgressGuard: TCP", () => {
  it("connects an allowed HTTP Host to the checked address; bytes flow and are counted", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["public.test.example"]);
    const body = await httpGet(guard, sandbox, world.publicAddress, "public.test.example");
    expect(body).toMatch(/^HTTP\/1\.1 200/);
    expect(body).toMatch(/host=public.test.example body=5$/);
    const event = await sandbox.nextEvent(1);
    expect(event).toMatchObject({
      kind: "tcp",
      host: "public.test.example",
      address: world.publicAddress,
      port: 80,
      decision: "allowed",
      reason: "allowed_name",
    });
    expect(event.bytesOut).toBeGreaterThan(60);
    expect(event.bytesIn).toBe(Buffer.byteLength(body));
  });

  it("refuses an unlisted or denied Host with a 403 naming it, before connecting", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["*.test.example"], ["second.test.example"]);
    const unlisted = await httpGet(guard, sandbox, world.publicAddress, "unlisted.example");
    expect(unlisted).toMatch(/^HTTP\/1\.1 403/);
    expect(unlisted).toMatch(/egress policy refused the connection to unlisted\.example/);
    expect(await httpGet(guard, sandbox, world.publicAddress, "second.test.example")).toMatch(
      /^HTTP\/1\.1 403/,
    );
    expect(sandbox.events.map((event) => [event.host, event.decision, event.reason, event.bytesOut])).toEqual(
      [
        ["unlisted.example", "denied", "not_listed", 0],
        ["second.test.example", "denied", "denied_name", 0],
      ],
    );
  });

  it("connects an allowed TLS server name and refuses an unlisted one", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["public.test.example"]);
    expect(await tlsTalk(guard, sandbox, world.publicAddress, "public.test.example")).toBe(
      "sni=public.test.example",
    );
    expect(await tlsTalk(guard, sandbox, world.publicAddress, "unlisted.example")).toBe("closed");
    await sandbox.nextEvent(2);
    expect(sandbox.events.map((event) => [event.host, event.reason])).toEqual([
      ["public.test.example", "allowed_name"],
      ["unlisted.example", "not_listed"],
    ]);
  });

  it("refuses SNI or Host that the address does not belong to", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["*.test.example"]);
    // Not pinned: the name's own addresses do not include this one.
    expect(await tlsTalk(guard, sandbox, world.publicAddress, "elsewhere.test.example")).toBe("closed");
    expect(await httpGet(guard, sandbox, world.publicAddress, "elsewhere.test.example")).toMatch(
      /^HTTP\/1\.1 403/,
    );
    // Pinned to public.test.example: another name is refused even though it resolves here too.
    await dnsQuery(guard, sandbox, "public.test.example");
    expect(await tlsTalk(guard, sandbox, world.publicAddress, "second.test.example")).toBe("closed");
    expect(await httpGet(guard, sandbox, world.publicAddress, "second.test.example")).toMatch(
      /^HTTP\/1\.1 403/,
    );
    expect(await tlsTalk(guard, sandbox, world.publicAddress, "public.test.example")).toBe(
      "sni=public.test.example",
    );
    await sandbox.nextEvent(6);
    expect(sandbox.events.map((event) => event.reason)).toEqual([
      "sni_mismatch",
      "host_mismatch",
      "allowed_name",
      "sni_mismatch",
      "host_mismatch",
      "allowed_name",
    ]);
  });

  it("refuses an allowed name whose address is loopback, private or never reachable", async () => {
    const guard = newGuard({ neverReachable: [`${world.publicAddress}/32`] });
    const sandbox = testSandbox(["*.test.example"]);
    expect(await httpGet(guard, sandbox, world.publicAddress, "public.test.example")).toMatch(
      /^HTTP\/1\.1 403/,
    );
    expect(await httpGet(guard, sandbox, world.privateAddress, "private.test.example")).toMatch(
      /^HTTP\/1\.1 403/,
    );
    sandbox.setRules(["*.test.example", "10.213.0.0/16"]);
    expect(await httpGet(guard, sandbox, world.privateAddress, "private.test.example")).toMatch(
      /host=private/,
    );
    await sandbox.nextEvent(3);
    expect(sandbox.events.map((event) => event.reason)).toEqual([
      "never_reachable",
      "private_address",
      "allowed_name",
    ]);
  });

  it("raw-IP connections follow the CIDR rules", async () => {
    const guard = newGuard();
    const echo = async (sandbox: TestSandbox, address: string): Promise<string> => {
      const socket = await intercepted(guard, sandbox, { kind: "tcp", address, port: 7000 });
      socket.end("\x00\x01binary");
      return readAll(socket);
    };
    const unlisted = testSandbox(["public.test.example"]);
    expect(await echo(unlisted, world.publicAddress)).toBe("");
    const cidr = testSandbox(["198.51.100.0/24"], [`${world.privateAddress}/32`]);
    expect(await echo(cidr, world.publicAddress)).toBe("\x00\x01binary");
    const wide = testSandbox(["*", "0.0.0.0/0"]);
    expect(await echo(wide, world.privateAddress)).toBe("");
    const privateCidr = testSandbox(["10.213.0.0/16"]);
    expect(await echo(privateCidr, world.privateAddress)).toBe("\x00\x01binary");
    const denied = testSandbox(["10.213.0.0/16"], [`${world.privateAddress}/32`]);
    expect(await echo(denied, world.privateAddress)).toBe("");
    const loopback = testSandbox(["127.0.0.0/8"]);
    expect(await echo(loopback, "127.0.0.1")).toBe("");
    const reasons = await Promise.all(
      [unlisted, cidr, wide, privateCidr, denied, loopback].map(
        async (sandbox) => (await sandbox.nextEvent(1)).reason,
      ),
    );
    expect(reasons).toEqual([
      "not_listed",
      "allowed_cidr",
      "private_address",
      "allowed_cidr",
      "denied_address",
      "never_reachable",
    ]);
    expect(cidr.events[0]).toMatchObject({ host: null, bytesOut: 8, bytesIn: 8 });
  });

  it("refuses a silent client after the peek window unless the address is pinned or listed", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["public.test.example"]);
    const silent = await intercepted(guard, sandbox, {
      kind: "tcp",
      address: world.publicAddress,
      port: 7001,
    });
    expect(await readAll(silent)).toBe("");
    expect((await sandbox.nextEvent(1)).reason).toBe("not_listed");
    // After the sandbox asked us for the name, the address is pinned: a server-speaks-first
    // protocol (SSH-like) to it is allowed.
    await dnsQuery(guard, sandbox, "public.test.example");
    const pinned = await intercepted(guard, sandbox, {
      kind: "tcp",
      address: world.publicAddress,
      port: 7001,
    });
    const hello = await new Promise<string>((resolve) =>
      pinned.once("data", (chunk: Buffer) => resolve(chunk.toString())),
    );
    expect(hello).toBe("HELLO\n");
    pinned.end();
    const event = await sandbox.nextEvent(3);
    expect(event).toMatchObject({ reason: "allowed_pinned", host: null, bytesIn: 6, bytesOut: 0 });
  });

  it("applies a policy change to the next connection", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["public.test.example"]);
    expect(await httpGet(guard, sandbox, world.publicAddress, "public.test.example")).toMatch(/ 200 /);
    sandbox.setRules(["registry.example"]);
    expect(await httpGet(guard, sandbox, world.publicAddress, "public.test.example")).toMatch(/ 403 /);
    expect((await dnsQuery(guard, sandbox, "public.test.example")).rcode).toBe("REFUSED");
    sandbox.setRules(["public.test.example"], ["public.test.example"]);
    expect(await httpGet(guard, sandbox, world.publicAddress, "public.test.example")).toMatch(/ 403 /);
    await sandbox.nextEvent(4);
    expect(sandbox.events.map((event) => event.reason)).toEqual([
      "allowed_name",
      "not_listed",
      "dns_refused",
      "denied_name",
    ]);
  });

  it("reports an allowed destination that does not answer as upstream_unreachable", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["198.51.100.0/24"]);
    const socket = await intercepted(guard, sandbox, {
      kind: "tcp",
      address: world.publicAddress,
      port: 7999,
    });
    socket.write("x");
    expect(await readAll(socket)).toBe("");
    expect(await sandbox.nextEvent(1)).toMatchObject({ decision: "allowed", reason: "upstream_unreachable" });
  });

  it("bounds the connections a sandbox has open at once", async () => {
    const guard = newGuard({ maxConnectionsPerSandbox: 2 });
    const sandbox = testSandbox(["198.51.100.0/24"]);
    const open = await Promise.all(
      [1, 2].map(() =>
        intercepted(guard, sandbox, { kind: "tcp", address: world.publicAddress, port: 7000 }),
      ),
    );
    const third = await intercepted(guard, sandbox, {
      kind: "tcp",
      address: world.publicAddress,
      port: 7000,
    });
    expect(await readAll(third)).toBe("");
    expect(await sandbox.nextEvent(1)).toMatchObject({ reason: "too_many_connections", decision: "denied" });
    for (const socket of open) socket.destroy();
    await sandbox.nextEvent(3);
    // Slots free again once those ended.
    const fourth = await intercepted(guard, sandbox, {
      kind: "tcp",
      address: world.publicAddress,
      port: 7000,
    });
    fourth.end("ok");
    expect(await readAll(fourth)).toBe("ok");
  });

  it("reads an SNI whose ClientHello arrives in pieces", async () => {
    const guard = newGuard();
    const sandbox = testSandbox(["public.test.example"]);
    const hello = await new Promise<Buffer>((resolve) => {
      const capture = createServer((socket) => {
        socket.once("data", (chunk: Buffer) => {
          resolve(chunk);
          socket.destroy();
          capture.close();
        });
      });
      capture.listen(0, "127.0.0.1", () => {
        const address = capture.address();
        if (address === null || typeof address === "string") throw new Error("no address");
        const client = tlsConnect({
          host: "127.0.0.1",
          port: address.port,
          servername: "public.test.example",
          rejectUnauthorized: false,
        });
        client.on("error", () => client.destroy());
      });
    });
    const socket = await intercepted(guard, sandbox, {
      kind: "tcp",
      address: world.publicAddress,
      port: 443,
    });
    const cuts = [0, 3, 9, 120, hello.length];
    for (let index = 1; index < cuts.length; index += 1) {
      socket.write(hello.subarray(cuts[index - 1], cuts[index]));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // The world answers (its ServerHello) only if the guard let the connection through.
    await new Promise<void>((resolve) => socket.once("data", () => resolve()));
    socket.destroy();
    expect(await sandbox.nextEvent(1)).toMatchObject({ host: "public.test.example", reason: "allowed_name" });
  });

  it("carries allowed connections through the upstream proxy with CONNECT, naming the host", async () => {
    const targets: string[] = [];
    const proxy = createServer({ allowHalfOpen: true }, (client) => {
      client.on("error", () => client.destroy());
      client.once("data", (head: Buffer) => {
        const target = /^CONNECT (\S+) HTTP\/1\.1\r\n/.exec(head.toString("latin1"))?.[1] ?? "";
        targets.push(target);
        const [host = "", port = ""] = target.split(":");
        const address = dns.records.get(host)?.[0] ?? host;
        const upstream = tcpConnect(Number(port), address, () => {
          client.write("HTTP/1.1 200 Connection established\r\n\r\n");
          client.pipe(upstream).pipe(client);
        });
        upstream.on("error", () => client.destroy());
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxyAddress = proxy.address();
    if (proxyAddress === null || typeof proxyAddress === "string") throw new Error("no proxy address");
    try {
      const guard = newGuard({ upstreamProxy: `http://127.0.0.1:${proxyAddress.port}` });
      const sandbox = testSandbox(["public.test.example", "198.51.100.0/24"]);
      expect(await httpGet(guard, sandbox, world.publicAddress, "public.test.example")).toMatch(
        /host=public.test.example body=5$/,
      );
      const echo = await intercepted(guard, sandbox, {
        kind: "tcp",
        address: world.publicAddress,
        port: 7000,
      });
      echo.end("raw");
      expect(await readAll(echo)).toBe("raw");
      expect(targets).toEqual(["public.test.example:80", `${world.publicAddress}:7000`]);
      await sandbox.nextEvent(2);
      expect(sandbox.events.map((event) => event.reason)).toEqual(["allowed_name", "allowed_cidr"]);
    } finally {
      proxy.close();
    }
  });
});
