/**
 * Network "allowlist" end to end on real bubblewrap sandboxes, through the real agent connection
 * (`driver.connect` then `interceptEgress`): what leaves the sandbox arrives at the test's
 * handler with its destination, and nothing else leaves. The addresses used inside are
 * documentation ranges that nothing on this machine routes: the handler answers them.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type {
  AgentConnection,
  EgressDestination,
  ForwardedPort,
  SandboxHandle,
  SandboxSpec,
} from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { runCommand, startProbeServer, waitFor } from "@polydev/core/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EGRESS_RELAY_TCP_PORT } from "./egress-allowlist.js";
import { NamespaceDriver } from "./namespace-driver.js";
import { parseEgressHeader } from "./sandbox-egress.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";

/** The address the test's DNS answers give every name. */
const ANSWERED_ADDRESS = [192, 0, 2, 55];

/** A DNS answer to `query`: one A record for an A question, no records otherwise. */
function dnsAnswer(query: Buffer): Buffer {
  let at = 12;
  while (at < query.length && query[at] !== 0) at += (query[at] ?? 0) + 1;
  const questionEnd = at + 5;
  const type = query.readUInt16BE(at + 1);
  const header = Buffer.from(query.subarray(0, 12));
  header.writeUInt16BE(0x8180, 2); // a response, recursion desired and available, no error
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(type === 1 ? 1 : 0, 6);
  header.writeUInt32BE(0, 8);
  const question = query.subarray(12, questionEnd);
  const record = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ANSWERED_ADDRESS]);
  return Buffer.concat([header, question, ...(type === 1 ? [record] : [])]);
}

/** Reads one DNS-over-TCP framed message off `socket`. */
function readFramed(socket: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let taken = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      taken = Buffer.concat([taken, chunk]);
      if (taken.length >= 2 && taken.length >= 2 + taken.readUInt16BE(0)) {
        socket.off("data", onData);
        resolve(taken.subarray(2, 2 + taken.readUInt16BE(0)));
      }
    };
    socket.on("data", onData);
    socket.once("end", () => reject(new Error("ended before a whole message")));
  });
}

interface Arrival {
  destination: EgressDestination;
  /** For tcp: the first bytes; for dns: the query. */
  bytes: Buffer;
}

/** Answers what arrives like a world of its own: tcp gets "pong:" + what it sent, dns an answer. */
function answeringHandler(arrivals: Arrival[], sockets: Set<Duplex>) {
  return (socket: Duplex, destination: EgressDestination): void => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("close", () => sockets.delete(socket));
    if (destination.kind === "dns") {
      readFramed(socket)
        .then((query) => {
          arrivals.push({ destination, bytes: query });
          const answer = dnsAnswer(query);
          const size = Buffer.alloc(2);
          size.writeUInt16BE(answer.length);
          socket.end(Buffer.concat([size, answer]));
        })
        .catch(() => socket.destroy());
      return;
    }
    socket.once("data", (chunk: Buffer) => {
      arrivals.push({ destination, bytes: chunk });
      socket.write(Buffer.concat([Buffer.from("pong:"), chunk]));
    });
    socket.once("end", () => socket.end());
  };
}

const python = (connection: AgentConnection, script: string) =>
  runCommand(connection, ["/usr/bin/python3", "-c", script], { timeoutMs: 20_000 });

const DNS_QUERY_PY = `
import socket, struct
def query(name, ident):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", 1, 1)
`;

describe("namespace driver: network allowlist", () => {
  let rootDir: string;
  let driver: NamespaceDriver;
  const cgroupName = privateCgroupName();
  let handle: SandboxHandle;
  let connection: AgentConnection;
  let listener: ForwardedPort;
  const arrivals: Arrival[] = [];
  const sockets = new Set<Duplex>();
  const spec = (id: string, extra: Partial<SandboxSpec> = {}): SandboxSpec => ({
    id: `ns-allow-${id}-${Math.random().toString(36).slice(2, 8)}`,
    limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
    network: "allowlist",
    env: {},
    ...extra,
  });

  beforeAll(async () => {
    rootDir = await mkdtemp(join(tmpdir(), "polydev-ns-allow-"));
    driver = new NamespaceDriver({
      rootDir,
      cgroupName,
      hostUidBase: privateUidBase(),
      hostUidCount: 10_000,
    });
    handle = await driver.create(spec("main"));
    connection = await driver.connect(handle);
    listener = await connection.interceptEgress(answeringHandler(arrivals, sockets));
  });
  beforeEach(() => {
    arrivals.length = 0;
  });
  afterAll(async () => {
    listener?.close();
    await connection?.close().catch(() => undefined);
    for (const sandbox of await driver.list()) await driver.destroy(sandbox.handle).catch(() => undefined);
    await rm(rootDir, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  it("names the feature when nft is installed", async () => {
    expect((await driver.probe()).features).toContain("egress-allowlist");
  });

  it("hands a TCP connection to any address to the handler with its destination, bytes both ways", async () => {
    const result = await python(
      connection,
      `import socket
s = socket.create_connection(("198.51.100.7", 443), timeout=10)
s.sendall(b"hello")
print(s.recv(100).decode())`,
    );
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("pong:hello\n");
    expect(arrivals).toEqual([
      { destination: { kind: "tcp", address: "198.51.100.7", port: 443 }, bytes: Buffer.from("hello") },
    ]);
  });

  it("hands a UDP DNS query over as kind dns and returns the answer from the address asked", async () => {
    const result = await python(
      connection,
      `${DNS_QUERY_PY}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(query("registry.example.com", 0x4242), ("10.0.2.3", 53))
data, source = s.recvfrom(4096)
print(source[0], source[1], struct.unpack("!H", data[:2])[0], ".".join(map(str, data[-4:])))`,
    );
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(`10.0.2.3 53 ${0x4242} ${ANSWERED_ADDRESS.join(".")}\n`);
    expect(arrivals.map((arrival) => arrival.destination)).toEqual([
      { kind: "dns", address: "10.0.2.3", port: 53 },
    ]);
    expect(arrivals[0]?.bytes.includes(Buffer.from("\x08registry\x07example\x03com"))).toBe(true);
  });

  it("answers glibc's resolver (getent) through /etc/resolv.conf", async () => {
    const result = await runCommand(connection, "getent hosts some.name.example");
    expect(result.stdout.trim().split(/\s+/)).toEqual([ANSWERED_ADDRESS.join("."), "some.name.example"]);
    expect(arrivals.length).toBeGreaterThan(0);
    for (const arrival of arrivals)
      expect(arrival.destination).toEqual({ kind: "dns", address: "10.0.2.3", port: 53 });
  });

  it("carries DNS over TCP to port 53 message by message", async () => {
    const result = await python(
      connection,
      `${DNS_QUERY_PY}
s = socket.create_connection(("203.0.113.9", 53), timeout=10)
f = s.makefile("rb")
for ident in (1, 2):
    q = query("git.example.com", ident)
    s.sendall(struct.pack("!H", len(q)) + q)
    size = struct.unpack("!H", f.read(2))[0]
    data = f.read(size)
    print(struct.unpack("!H", data[:2])[0], ".".join(map(str, data[-4:])))`,
    );
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(`1 ${ANSWERED_ADDRESS.join(".")}\n2 ${ANSWERED_ADDRESS.join(".")}\n`);
    expect(arrivals.map((arrival) => arrival.destination)).toEqual([
      { kind: "dns", address: "203.0.113.9", port: 53 },
      { kind: "dns", address: "203.0.113.9", port: 53 },
    ]);
  });

  it("lets nothing else out: other UDP, ICMP, IPv6, raw and packet sockets fail fast; only lo exists", async () => {
    const result = await python(
      connection,
      `import socket, errno
out = []
def attempt(name, action):
    try:
        action()
        out.append(name + " ok")
    except OSError as error:
        out.append(name + " " + (errno.errorcode.get(error.errno) or str(error)))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.connect(("198.51.100.7", 9999)); s.send(b"x"); s.recv(10)
def ping():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); s.settimeout(3)
    s.sendto(b"\\x08\\0\\xf7\\xff\\0\\0\\0\\0", ("198.51.100.7", 0)); s.recv(10)
attempt("udp", udp)
attempt("icmp", ping)
attempt("ipv6", lambda: socket.create_connection(("2001:db8::1", 443), timeout=3))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet", lambda: socket.socket(17, socket.SOCK_RAW, 0x0300))
print(" ".join(out))
print(" ".join(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))`,
    );
    expect(result.stderr).toBe("");
    const [attempts = "", links = ""] = result.stdout.trim().split("\n");
    // Each fails, and fails at once (no timeout): EPERM from the ruleset's reject, EACCES for
    // sockets that need privileges the sandbox lacks, ENETUNREACH without IPv6 routes.
    expect(attempts).toMatch(
      /^udp (EPERM|ECONNREFUSED) icmp (EACCES|EPERM) ipv6 ENETUNREACH raw EPERM packet EPERM$/,
    );
    expect(links).toBe("lo");
    expect(arrivals).toEqual([]);
  });

  it("keeps the routes, the ruleset and the network sysctls out of the sandbox's reach", async () => {
    const result = await runCommand(
      connection,
      [
        "/usr/sbin/nft flush ruleset 2>/dev/null && echo nft-flushed",
        "/usr/sbin/nft list ruleset 2>/dev/null | grep -q polydev && echo nft-listed",
        "ip route del local default table local 2>/dev/null && echo route-deleted",
        "ip link add dummy0 type dummy 2>/dev/null && echo link-added",
        "echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null && echo sysctl-written",
        "echo done",
      ].join("; "),
    );
    expect(result.stdout).toBe("done\n");
    // Still confined afterwards.
    const after = await python(
      connection,
      `import socket
s = socket.create_connection(("198.51.100.7", 80), timeout=10); s.sendall(b"again"); print(s.recv(100).decode())`,
    );
    expect(after.stdout).toBe("pong:again\n");
  });

  it("reaches no host listener on its loopback, its own addresses or IPv6 when the handler refuses", async () => {
    const refusing = await driver.create(spec("refused"));
    const refusingConnection = await driver.connect(refusing);
    const refused: EgressDestination[] = [];
    const refusingListener = await refusingConnection.interceptEgress((socket, destination) => {
      refused.push(destination);
      socket.destroy();
    });
    const hosts = [
      "127.0.0.1",
      "::1",
      ...Object.values(networkInterfaces())
        .flat()
        .filter(
          (address) => address !== undefined && !address.internal && !address.address.startsWith("fe80"),
        )
        .map((address) => address?.address ?? ""),
    ];
    const servers = await Promise.all(hosts.map((host) => startProbeServer(host).catch(() => undefined)));
    try {
      const targets = hosts.flatMap((host, index) => {
        const server = servers[index];
        return server === undefined ? [] : [[host, server.port] as const];
      });
      const result = await python(
        refusingConnection,
        `import socket
for host, port in ${JSON.stringify(targets)}:
    try:
        s = socket.create_connection((host, port), timeout=3)
        data = s.recv(100)
        print(host, "got", data)
    except OSError as error:
        print(host, "failed")`,
      );
      expect(result.stdout).not.toContain("polydev-probe");
      expect(servers.map((server) => server?.connections() ?? 0)).toEqual(servers.map(() => 0));
      // The host's own IPv4 addresses arrived at the handler (which the server's policy refuses),
      // the loopback ones stayed inside the sandbox.
      expect(refused.every((destination) => destination.address !== "127.0.0.1")).toBe(true);
    } finally {
      for (const server of servers) await server?.close();
      refusingListener.close();
      await refusingConnection.close();
      await driver.destroy(refusing);
    }
  });

  it("a process connecting straight to the relay port arrives as 127.0.0.1, which the caller can refuse", async () => {
    const result = await python(
      connection,
      `import socket
s = socket.create_connection(("127.0.0.1", ${EGRESS_RELAY_TCP_PORT}), timeout=10); s.sendall(b"direct"); print(s.recv(100).decode())`,
    );
    expect(result.stdout).toBe("pong:direct\n");
    expect(arrivals.map((arrival) => arrival.destination)).toEqual([
      { kind: "tcp", address: "127.0.0.1", port: EGRESS_RELAY_TCP_PORT },
    ]);
  });

  it("ends a connection's stream without an error when the sandbox is destroyed mid-connection", async () => {
    const doomed = await driver.create(spec("doomed"));
    const doomedConnection = await driver.connect(doomed);
    const arrived: Duplex[] = [];
    const doomedListener = await doomedConnection.interceptEgress((socket) => {
      socket.on("error", () => undefined);
      arrived.push(socket);
      socket.write("hi");
    });
    const holder = await doomedConnection.exec({
      argv: [
        "/usr/bin/python3",
        "-c",
        `import socket, time
s = socket.create_connection(("198.51.100.7", 443), timeout=10); s.recv(2); print("held", flush=True); time.sleep(600)`,
      ],
    });
    holder.stdin.end();
    holder.stdout.resume();
    holder.stderr.resume();
    const socket = await waitFor("the held connection", async () => arrived[0]);
    const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    await driver.destroy(doomed);
    await ended;
    await doomedListener.closed;
    await doomedConnection.close().catch(() => undefined);
  });

  it("stops intercepting once its listener is closed, and after the relay is killed from inside", async () => {
    const sandbox = await driver.create(spec("stop"));
    const sandboxConnection = await driver.connect(sandbox);
    const seen: EgressDestination[] = [];
    const connectOnce = `import socket
try:
    s = socket.create_connection(("198.51.100.7", 443), timeout=5); s.sendall(b"x"); print(s.recv(10) or b"closed")
except OSError as error:
    print("failed", error.errno)`;
    try {
      const first = await sandboxConnection.interceptEgress((socket, destination) => {
        seen.push(destination);
        socket.end("ok");
      });
      expect((await python(sandboxConnection, connectOnce)).stdout).toBe("b'ok'\n");
      first.close();
      await first.closed;
      expect((await python(sandboxConnection, connectOnce)).stdout).toMatch(/^failed/);
      expect(seen.length).toBe(1);

      // A sandbox process may kill its relay (it is one of its own): interception then ends
      // (the listener closes) and nothing gets out either.
      const second = await sandboxConnection.interceptEgress((socket, destination) => {
        seen.push(destination);
        socket.end("ok");
      });
      const killed = await python(
        sandboxConnection,
        `import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        if b"--egress-relay" in open(f"/proc/{pid}/cmdline", "rb").read():
            os.kill(int(pid), signal.SIGKILL); print("killed", pid)
    except OSError:
        pass`,
      );
      expect(killed.stdout).toContain("killed");
      await second.closed;
      expect((await python(sandboxConnection, connectOnce)).stdout).toMatch(/^failed/);
      expect(seen.length).toBe(1);
      // And the server can start it again.
      const third = await sandboxConnection.interceptEgress((socket, destination) => {
        seen.push(destination);
        socket.end("ok");
      });
      expect((await python(sandboxConnection, connectOnce)).stdout).toBe("b'ok'\n");
      third.close();
    } finally {
      await sandboxConnection.close();
      await driver.destroy(sandbox);
    }
  });

  it("refuses interception for a sandbox of another network mode (feature_unavailable)", async () => {
    const other = await driver.create(spec("none", { network: "none" }));
    const otherConnection = await driver.connect(other);
    try {
      const error = await otherConnection.interceptEgress(() => undefined).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(PolydevError);
      expect(error).toMatchObject({ code: "feature_unavailable" });
    } finally {
      await otherConnection.close();
      await driver.destroy(other);
    }
  });
});

describe("egress header", () => {
  it("accepts exactly kind, IP address and port", () => {
    expect(parseEgressHeader("tcp 198.51.100.7 443")).toEqual({
      kind: "tcp",
      address: "198.51.100.7",
      port: 443,
    });
    expect(parseEgressHeader("dns 2001:db8::1 53")).toEqual({
      kind: "dns",
      address: "2001:db8::1",
      port: 53,
    });
    expect(parseEgressHeader("tcp 10.0.0.1 0")).toEqual({ kind: "tcp", address: "10.0.0.1", port: 0 });
    for (const bad of [
      "udp 10.0.0.1 53",
      "tcp example.com 443",
      "tcp 10.0.0.1 65536",
      "tcp 10.0.0.1 0443",
      "tcp 10.0.0.1 443 extra",
      "tcp 999.0.0.1 443",
      "tcp  10.0.0.1 443",
      "",
    ]) {
      expect(parseEgressHeader(bad), bad).toBeUndefined();
    }
  });
});
