/**
 * A test host on a network the test creates, never an outside address: a network namespace
 * `pdtest-<random>` joined to the root namespace by a veth pair, with addresses in 203.0.113.0/24
 * (the benchmarking range: neither private nor anyone's real host) plus one private 10.x address,
 * both routed from the root namespace, where the Polydev server under test runs. Inside it one
 * child process (test-network-server.ts) serves HTTP, HTTPS (a certificate made for this run),
 * DNS from the test's zone, and a UDP echo, and records what reached it.
 *
 * Cleanup does not depend on the test ending well: a detached watchdog holds a pipe from the
 * test process and tears the namespace down when the pipe closes (close(), a crash, SIGKILL), and
 * the test host exits when its IPC channel closes. Namespaces a watchdog could not clean (the
 * machine rebooted mid-test) are removed by the next start once they are an hour old.
 */
import type { ChildProcess } from "node:child_process";
import { execFile, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { isIPv4, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type {
  TestNetworkControl,
  TestNetworkDatagram,
  TestNetworkDnsQuery,
  TestNetworkReply,
  TestNetworkRequest,
} from "./test-network-protocol.js";

export type {
  TestNetworkDatagram,
  TestNetworkDnsQuery,
  TestNetworkRequest,
} from "./test-network-protocol.js";

const IP = "/usr/sbin/ip";
const OPENSSL = "/usr/bin/openssl";
const NETNS_DIR = "/run/netns";
const NAMESPACE_PREFIX = "pdtest-";
const STALE_AFTER_MS = 60 * 60 * 1000;
const HTTP_PORT = 80;
const HTTPS_PORT = 443;
const DNS_PORT = 53;
const UDP_ECHO_PORT = 7;
const START_TIMEOUT_MS = 20_000;
const STDERR_LIMIT = 4096;
/**
 * 203.0.113.0/24 (TEST-NET-3, RFC 5737): documentation space no real host uses, and which
 * Polydev's egress policy treats as public (the benchmarking range 198.18.0.0/15 counts as
 * private there: operators use it inside their networks). 64 /30 links.
 */
const TEST_NET_RANGE = { base: ipToNumber("203.0.113.0"), blocks: 256 / 4 };

export interface TestNetworkOptions {
  /** name → IPv4 answers of the test DNS server; names are matched lowercased, others are NXDOMAIN. */
  zone: Record<string, string[]>;
}

export interface TestNetwork {
  /** The network namespace's name (`ip netns exec <namespace> …`). */
  namespace: string;
  /** The root-namespace end of the veth pair (what the test host sees as the root's address). */
  hostAddress: string;
  /** Where HTTP, HTTPS, DNS and the UDP echo listen inside the test namespace (203.0.113.0/24). */
  serverAddress: string;
  /** A second address of the test host, inside 10.0.0.0/8 (outside 10.0.0.0/16, slirp4netns's own). */
  privateServerAddress: string;
  /** `address:port` of the DNS server (UDP and TCP), as `dns.Resolver.setServers` takes it. */
  dnsServer: string;
  httpPort: number;
  httpsPort: number;
  /** A UDP port that echoes each datagram back (for "UDP other than DNS is dropped"). */
  udpEchoPort: number;
  /** The CA that signed the HTTPS certificate (its names: every zone name and both addresses). */
  caCertPem: string;
  /** Every HTTP and HTTPS request that reached the test host so far, oldest first. */
  requests(): Promise<TestNetworkRequest[]>;
  /** Every DNS question the test host was asked so far, oldest first. */
  dnsQueries(): Promise<TestNetworkDnsQuery[]>;
  /** Every datagram the UDP echo port received so far, oldest first. */
  datagrams(): Promise<TestNetworkDatagram[]>;
  /** Replaces the DNS zone (for answers that change between two lookups, as a rebinding attack does). */
  setZone(zone: Record<string, string[]>): Promise<void>;
  /** Stops the test host and removes the namespace and the veth pair. */
  close(): Promise<void>;
}

/** Why no test network can be made here (a test's skip reason), or undefined when one can. */
export function testNetworkUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "test networks need root (ip netns add, veth pairs)";
  for (const binary of [IP, OPENSSL]) {
    try {
      accessSync(binary, constants.X_OK);
    } catch {
      return `test networks need ${binary}`;
    }
  }
  return undefined;
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(file, args, { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(" ")}: ${stderr.trim() || error.message}`));
      else resolvePromise(stdout);
    });
  });
}

function ipToNumber(address: string): number {
  return address.split(".").reduce((value, part) => value * 256 + Number(part), 0);
}

function numberToIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

interface Range {
  first: number;
  last: number;
}

function cidrRange(cidr: string): Range | undefined {
  const [address, bits = "32"] = cidr.split("/");
  if (address === undefined || !isIPv4(address)) return undefined;
  const size = 2 ** (32 - Number(bits));
  const first = Math.floor(ipToNumber(address) / size) * size;
  return { first, last: first + size - 1 };
}

function overlaps(a: Range, b: Range): boolean {
  return a.first <= b.last && b.first <= a.last;
}

/** Every IPv4 destination the root namespace already routes or owns, but the default route. */
async function takenRanges(): Promise<{ range: Range; device: string }[]> {
  const routes = JSON.parse(await run(IP, ["-j", "-4", "route", "show", "table", "all"])) as {
    dst?: string;
    dev?: string;
  }[];
  const taken: { range: Range; device: string }[] = [];
  for (const route of routes) {
    const range = route.dst === undefined || route.dst === "default" ? undefined : cidrRange(route.dst);
    if (range) taken.push({ range, device: route.dev ?? "" });
  }
  return taken;
}

interface Addresses {
  hostAddress: string;
  serverAddress: string;
  privateServerAddress: string;
  link: Range;
  private: Range;
}

function randomAddresses(): Addresses {
  const linkBase = TEST_NET_RANGE.base + 4 * randomInt(TEST_NET_RANGE.blocks);
  // 10.64.0.0 and up: clear of slirp4netns's 10.0.2.0/24 and of the low ranges hosts tend to use.
  const privateAddress = ipToNumber(`10.${randomInt(64, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`);
  return {
    hostAddress: numberToIp(linkBase + 1),
    serverAddress: numberToIp(linkBase + 2),
    privateServerAddress: numberToIp(privateAddress),
    link: { first: linkBase, last: linkBase + 3 },
    private: { first: privateAddress, last: privateAddress },
  };
}

/** Fresh addresses no route of the root namespace covers yet (random, so parallel tests rarely meet). */
async function freeAddresses(): Promise<Addresses> {
  const taken = await takenRanges();
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = randomAddresses();
    if (!taken.some(({ range }) => overlaps(range, candidate.link) || overlaps(range, candidate.private)))
      return candidate;
  }
  throw new Error("no free test-network addresses in 203.0.113.0/24 after 50 tries");
}

/** After setting up: did another test pick overlapping addresses at the same moment? */
async function addressesStillOurs(addresses: Addresses, device: string): Promise<boolean> {
  const taken = await takenRanges();
  return !taken.some(
    ({ range, device: other }) =>
      other !== device && (overlaps(range, addresses.link) || overlaps(range, addresses.private)),
  );
}

/** Removes `pdtest-*` namespaces older than an hour (left by a machine that stopped mid-test). */
async function removeStaleNamespaces(): Promise<void> {
  const names = await readdir(NETNS_DIR).catch(() => [] as string[]);
  for (const name of names.filter((entry) => entry.startsWith(NAMESPACE_PREFIX))) {
    const info = await stat(join(NETNS_DIR, name)).catch(() => undefined);
    if (!info || Date.now() - info.mtimeMs < STALE_AFTER_MS) continue;
    await killNamespaceProcesses(name).catch(() => undefined);
    await run(IP, ["netns", "delete", name]).catch(() => undefined);
  }
}

async function killNamespaceProcesses(namespace: string): Promise<void> {
  const pids = (await run(IP, ["netns", "pids", namespace])).split("\n").filter((pid) => /^\d+$/.test(pid));
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/**
 * Holds a pipe from this process and, once it closes (close() ends it; a crash or SIGKILL of the
 * test closes it too), kills what runs in the namespace and deletes the namespace and the veth.
 * Detached, so a Ctrl-C to the test's process group does not take it down before it has cleaned.
 */
function startWatchdog(namespace: string, device: string): ChildProcess {
  const script = [
    "cat >/dev/null",
    `ip netns pids "$1" 2>/dev/null | xargs -r kill -9 2>/dev/null`,
    `ip link delete "$2" 2>/dev/null`,
    `ip netns delete "$1" 2>/dev/null`,
    "exit 0",
  ].join("\n");
  const watchdog = spawn("/bin/sh", ["-c", script, "pdtest-watchdog", namespace, device], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
  });
  watchdog.unref();
  // The pipe must not keep the test process alive: its closing at exit is the point.
  if (watchdog.stdin instanceof Socket) watchdog.stdin.unref();
  watchdog.stdin?.on("error", () => undefined);
  return watchdog;
}

/** Waits for a child to exit, holding the event loop open meanwhile (the children are unref'd). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  child.ref();
  return new Promise((resolvePromise) => child.once("exit", () => resolvePromise()));
}

/** Names a certificate SAN may carry without breaking openssl's config syntax. */
const CERTIFICATE_NAME = /^[a-z0-9_*-]+(\.[a-z0-9_*-]+)*$/;

/** A CA and a leaf for every zone name and both addresses, made for this run (EC P-256: quick). */
async function makeCertificates(
  names: string[],
  addresses: string[],
): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const dir = await mkdtemp(join(tmpdir(), "pdtest-tls-"));
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await run(OPENSSL, [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      join(dir, "ca.key"),
      "-out",
      join(dir, "ca.pem"),
      "-days",
      "2",
      "-subj",
      "/CN=Polydev test network CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    await run(OPENSSL, [
      "req",
      "-new",
      ...ec,
      "-keyout",
      join(dir, "leaf.key"),
      "-out",
      join(dir, "leaf.csr"),
      "-subj",
      "/CN=polydev-test-host",
    ]);
    const subjectAltNames = [...names.map((name) => `DNS:${name}`), ...addresses.map((a) => `IP:${a}`)];
    await writeFile(
      join(dir, "leaf.ext"),
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        `subjectAltName=${subjectAltNames.join(",")}`,
        "",
      ].join("\n"),
    );
    await run(OPENSSL, [
      "x509",
      "-req",
      "-in",
      join(dir, "leaf.csr"),
      "-CA",
      join(dir, "ca.pem"),
      "-CAkey",
      join(dir, "ca.key"),
      "-set_serial",
      `0x${randomBytes(8).toString("hex")}`,
      "-days",
      "2",
      "-extfile",
      join(dir, "leaf.ext"),
      "-out",
      join(dir, "leaf.pem"),
    ]);
    const [caPem, certPem, keyPem] = await Promise.all(
      ["ca.pem", "leaf.pem", "leaf.key"].map((file) => readFile(join(dir, file), "utf8")),
    );
    if (caPem === undefined || certPem === undefined || keyPem === undefined)
      throw new Error("openssl wrote nothing");
    return { caPem, certPem, keyPem };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function normalizeZone(zone: Record<string, string[]>): Record<string, string[]> {
  const normalized: Record<string, string[]> = {};
  for (const [rawName, addresses] of Object.entries(zone)) {
    const name = rawName.toLowerCase().replace(/\.$/, "");
    if (!CERTIFICATE_NAME.test(name)) throw new Error(`test network zone: "${rawName}" is not a DNS name`);
    const bad = addresses.find((address) => !isIPv4(address));
    if (bad !== undefined)
      throw new Error(`test network zone: "${bad}" (for ${rawName}) is not an IPv4 address`);
    normalized[name] = [...addresses];
  }
  return normalized;
}

/** The test host's program: its TypeScript source under tsx when this file runs from source. */
function serverCommand(): { args: string[]; cwd: string } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith(".ts")) {
    const script = resolve(import.meta.dirname, "test-network-server.ts");
    return { args: ["--import", "tsx", script], cwd: resolve(import.meta.dirname, "../../../..") };
  }
  return { args: [resolve(import.meta.dirname, "test-network-server.js")], cwd: "/" };
}

/** Creates the namespace and the veth pair; the watchdog is running before anything else exists. */
async function createNamespace(): Promise<{
  namespace: string;
  device: string;
  addresses: Addresses;
  watchdog: ChildProcess;
}> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const id = randomBytes(4).toString("hex");
    const namespace = `${NAMESPACE_PREFIX}${id}`;
    // Interface names have at most 15 characters.
    const device = `pdt${id}h`;
    const peer = `pdt${id}n`;
    try {
      await run(IP, ["netns", "add", namespace]);
    } catch (error) {
      if (error instanceof Error && /exists/i.test(error.message)) continue;
      throw error;
    }
    const watchdog = startWatchdog(namespace, device);
    try {
      const addresses = await freeAddresses();
      await run(IP, ["link", "add", device, "type", "veth", "peer", "name", peer, "netns", namespace]);
      await run(IP, ["addr", "add", `${addresses.hostAddress}/30`, "dev", device]);
      await run(IP, ["link", "set", device, "up"]);
      const inside = (...args: string[]): Promise<string> => run(IP, ["-n", namespace, ...args]);
      await inside("link", "set", "lo", "up");
      await inside("addr", "add", `${addresses.serverAddress}/30`, "dev", peer);
      await inside("addr", "add", `${addresses.privateServerAddress}/32`, "dev", peer);
      await inside("link", "set", peer, "up");
      // Answers to any source (a sandbox's slirp4netns, the server) go back through the root.
      await inside("route", "add", "default", "via", addresses.hostAddress);
      await run(IP, ["route", "add", `${addresses.privateServerAddress}/32`, "via", addresses.serverAddress]);
      if (await addressesStillOurs(addresses, device)) return { namespace, device, addresses, watchdog };
    } catch (error) {
      watchdog.stdin?.end();
      await exited(watchdog);
      throw error;
    }
    // Another test took overlapping addresses at the same moment: both give way and try again.
    watchdog.stdin?.end();
    await exited(watchdog);
  }
  throw new Error("could not create a test network namespace after 5 tries");
}

/** Starts a test network; throws (with testNetworkUnavailable()'s reason) where it cannot. */
export async function startTestNetwork(options: TestNetworkOptions): Promise<TestNetwork> {
  const unavailable = testNetworkUnavailable();
  if (unavailable) throw new Error(unavailable);
  const zone = normalizeZone(options.zone);
  await removeStaleNamespaces();
  const { namespace, addresses, watchdog } = await createNamespace();
  let child: ChildProcess | undefined;
  try {
    const { caPem, certPem, keyPem } = await makeCertificates(Object.keys(zone), [
      addresses.serverAddress,
      addresses.privateServerAddress,
    ]);
    const command = serverCommand();
    child = spawn(IP, ["netns", "exec", namespace, process.execPath, ...command.args], {
      cwd: command.cwd,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    const host = child;
    let stderr = "";
    host.stderr?.on("data", (chunk: Buffer) => {
      if (stderr.length < STDERR_LIMIT) stderr += chunk.toString("utf8");
    });
    // The test host must not keep the test process alive, nor outlive it (it exits on disconnect):
    // its channel holds the event loop open only while an answer from it is awaited.
    host.unref();
    const pending = new Map<number, (reply: TestNetworkReply) => void>();
    let nextId = 1;
    await new Promise<void>((resolvePromise, reject) => {
      const timer = setTimeout(
        () => done(new Error(`the test host did not start in ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
      const onExit = (code: number | null): void =>
        done(new Error(`the test host exited (${code}): ${stderr.trim()}`));
      const onMessage = (reply: TestNetworkReply): void => {
        if (reply.type === "ready") done();
        else if (reply.type === "failed") done(new Error(`the test host failed to start: ${reply.message}`));
      };
      const done = (error?: Error): void => {
        clearTimeout(timer);
        host.channel?.unref();
        host.off("exit", onExit);
        host.off("message", onMessage);
        if (error) reject(error);
        else resolvePromise();
      };
      host.on("exit", onExit);
      host.on("message", onMessage);
      host.on("error", (error) => done(error));
      const start: TestNetworkControl = {
        type: "start",
        config: {
          zone,
          certPem,
          keyPem,
          httpPort: HTTP_PORT,
          httpsPort: HTTPS_PORT,
          dnsPort: DNS_PORT,
          udpEchoPort: UDP_ECHO_PORT,
        },
      };
      host.send(start);
    });
    host.on("message", (reply: TestNetworkReply) => {
      if ("id" in reply) {
        pending.get(reply.id)?.(reply);
        pending.delete(reply.id);
        if (pending.size === 0) host.channel?.unref();
      }
    });
    host.on("exit", () => {
      for (const [id, resolveReply] of pending) {
        pending.delete(id);
        resolveReply({ type: "failed", message: `the test host exited: ${stderr.trim()}` });
      }
    });

    const ask = (message: Extract<TestNetworkControl, { id: number }>): Promise<TestNetworkReply> =>
      new Promise((resolveReply) => {
        if (!host.connected) {
          resolveReply({ type: "failed", message: "the test host is not running" });
          return;
        }
        pending.set(message.id, resolveReply);
        host.channel?.ref();
        host.send(message);
      });
    const records = async (): Promise<Extract<TestNetworkReply, { type: "records" }>> => {
      const reply = await ask({ type: "records", id: nextId++ });
      if (reply.type !== "records")
        throw new Error(reply.type === "failed" ? reply.message : "unexpected reply");
      return reply;
    };
    let closing: Promise<void> | undefined;
    return {
      namespace,
      hostAddress: addresses.hostAddress,
      serverAddress: addresses.serverAddress,
      privateServerAddress: addresses.privateServerAddress,
      dnsServer: `${addresses.serverAddress}:${DNS_PORT}`,
      httpPort: HTTP_PORT,
      httpsPort: HTTPS_PORT,
      udpEchoPort: UDP_ECHO_PORT,
      caCertPem: caPem,
      requests: async () => (await records()).requests,
      dnsQueries: async () => (await records()).dnsQueries,
      datagrams: async () => (await records()).datagrams,
      setZone: async (next) => {
        const reply = await ask({ type: "zone", id: nextId++, zone: normalizeZone(next) });
        if (reply.type === "failed") throw new Error(reply.message);
      },
      close: () => {
        closing ??= (async () => {
          host.kill("SIGTERM");
          await exited(host);
          watchdog.stdin?.end();
          await exited(watchdog);
        })();
        return closing;
      },
    };
  } catch (error) {
    child?.kill("SIGKILL");
    if (child) await exited(child);
    watchdog.stdin?.end();
    await exited(watchdog);
    throw error;
  }
}
