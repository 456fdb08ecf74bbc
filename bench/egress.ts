/**
 * Egress benchmark: what a sandbox's way out costs. One client program (EGRESS_CLIENT) measures
 * TCP connection setup (connect, then connect + first response byte of a small HTTP GET) and a
 * large download, against the test host of a test network (never an outside address): once run
 * on the host directly (the baseline), then inside a sandbox for each egress path in
 * EGRESS_PATHS, all in one run. The CPU a path spends forwarding is read from /proc across the
 * download: the server process alone, and the server with every process under it (the sandbox,
 * slirp4netns, any relay), less the client itself.
 *
 * Adding a path (the allow-list one) is one more EgressPath: how to create its sandbox and how to
 * hook its egress once the sandbox exists (set a policy that allows the test host, say).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestNetwork } from "@polydev/core/testing";
import { startTestNetwork } from "@polydev/core/testing";
import { startServerProcess } from "./server-process.js";
import type { Summary } from "./stats.js";
import { fmt, summarize } from "./stats.js";

export interface BenchClient {
  url: string;
  key: string;
}

/** The name the client sends as Host (and, when a path needs it, resolves). */
export const EGRESS_BENCH_NAME = "bench.egress.test";

/** One way out of a sandbox to measure against the host's own. */
export interface EgressPath {
  name: string;
  /** Creates the sandbox this path runs in; returns its id. */
  createSandbox(client: BenchClient, network: TestNetwork): Promise<string>;
  /** Whatever the path needs once the sandbox runs and before the first connection. */
  hookEgress(client: BenchClient, sandboxId: string, network: TestNetwork): Promise<void>;
  /** What the client connects to: an address, or a name it resolves first (outside the timings). */
  target(network: TestNetwork): string;
}

export async function createSandbox(client: BenchClient, body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${client.url}/v1/sandboxes`, {
    method: "POST",
    headers: { authorization: `Bearer ${client.key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const created = (await response.json()) as { id?: string; error?: { message: string } };
  if (response.status !== 201 || !created.id) throw new Error(`create failed: ${created.error?.message}`);
  return created.id;
}

export const EGRESS_PATHS: EgressPath[] = [
  {
    name: "`egress` (slirp4netns)",
    createSandbox: (client) => createSandbox(client, { network: "egress" }),
    hookEgress: async () => undefined,
    target: (network) => network.serverAddress,
  },
  {
    name: "`allowlist` (policy path)",
    createSandbox: (client) =>
      createSandbox(client, { network: { mode: "allowlist", allow: [EGRESS_BENCH_NAME] } }),
    hookEgress: async () => undefined,
    // Resolved inside the sandbox (the server answers and pins it), outside the timings.
    target: () => EGRESS_BENCH_NAME,
  },
];

/**
 * The measuring client, plain CommonJS for `node -e` (the same file on the host and in a
 * sandbox, where /usr/bin/node is bound). argv: mode (latency|download), target, port, Host,
 * rounds or bytes. Prints one JSON line.
 */
export const EGRESS_CLIENT = String.raw`
const net = require("node:net");
const dns = require("node:dns/promises");
const [mode, target, port, hostHeader, count] = process.argv.slice(1);
const elapsedMs = (start) => Number(process.hrtime.bigint() - start) / 1e6;
function fetchOnce(address, path) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const socket = net.connect({ host: address, port: Number(port) });
    socket.setNoDelay(true);
    let connectMs, firstByteMs, bytes = 0;
    socket.on("connect", () => {
      connectMs = elapsedMs(start);
      socket.write("GET " + path + " HTTP/1.1\r\nHost: " + hostHeader + "\r\nConnection: close\r\n\r\n");
    });
    socket.on("data", (chunk) => {
      if (firstByteMs === undefined) firstByteMs = elapsedMs(start);
      bytes += chunk.length;
    });
    socket.on("error", reject);
    socket.on("close", () => {
      if (firstByteMs === undefined) reject(new Error("no answer from " + address));
      else resolve({ connectMs, firstByteMs, totalMs: elapsedMs(start), bytes });
    });
  });
}
(async () => {
  const resolveStart = process.hrtime.bigint();
  const address = net.isIP(target) ? target : (await dns.lookup(target, { family: 4 })).address;
  const resolveMs = elapsedMs(resolveStart);
  if (mode === "latency") {
    const connectMs = [], firstByteMs = [];
    for (let i = 0; i < Number(count); i++) {
      const sample = await fetchOnce(address, "/");
      connectMs.push(sample.connectMs);
      firstByteMs.push(sample.firstByteMs);
    }
    process.stdout.write(JSON.stringify({ resolveMs, connectMs, firstByteMs }) + "\n");
  } else {
    const cpuBefore = process.cpuUsage();
    const sample = await fetchOnce(address, "/bytes/" + count);
    const cpu = process.cpuUsage(cpuBefore);
    if (sample.bytes < Number(count)) throw new Error("short download: " + sample.bytes + " bytes");
    process.stdout.write(JSON.stringify({ resolveMs, ms: sample.totalMs, bytes: sample.bytes, clientCpuMs: (cpu.user + cpu.system) / 1000 }) + "\n");
  }
})().catch((error) => { process.stderr.write(String(error && error.stack || error) + "\n"); process.exit(1); });
`;

interface LatencyOutput {
  resolveMs: number;
  connectMs: number[];
  firstByteMs: number[];
}

interface DownloadOutput {
  resolveMs: number;
  ms: number;
  bytes: number;
  clientCpuMs: number;
}

/** Runs the client somewhere and returns its stdout. */
type RunClient = (args: string[]) => Promise<string>;

const runOnHost: RunClient = (args) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", EGRESS_CLIENT, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: "/usr/bin:/bin" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`client exited ${code}: ${stderr}`)),
    );
  });

function runInSandbox(client: BenchClient, sandboxId: string): RunClient {
  return async (args) => {
    const response = await fetch(`${client.url}/v1/sandboxes/${sandboxId}/exec`, {
      method: "POST",
      headers: { authorization: `Bearer ${client.key}`, "content-type": "application/json" },
      body: JSON.stringify({ cmd: ["/usr/bin/node", "-e", EGRESS_CLIENT, ...args], timeoutMs: 300_000 }),
    });
    const result = (await response.json()) as {
      exitCode?: number | null;
      stdout?: string;
      stderr?: string;
      error?: { message: string };
    };
    if (response.status !== 200 || result.exitCode !== 0)
      throw new Error(`client in the sandbox failed: ${result.error?.message ?? result.stderr ?? ""}`);
    return result.stdout ?? "";
  };
}

/** CPU time (ms) of each process, from /proc/<pid>/stat (utime + stime, its own, not its children's). */
async function processCpu(): Promise<Map<number, { parent: number; cpuMs: number }>> {
  const ticksPerSecond = 100;
  const table = new Map<number, { parent: number; cpuMs: number }>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // The command name may hold spaces and parentheses: fields start after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const parent = Number(fields[1]);
    const cpuTicks = Number(fields[11]) + Number(fields[12]);
    if (Number.isFinite(parent) && Number.isFinite(cpuTicks))
      table.set(Number(entry), { parent, cpuMs: (cpuTicks * 1000) / ticksPerSecond });
  }
  return table;
}

function descendants(table: Map<number, { parent: number }>, root: number): Set<number> {
  const found = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, { parent }] of table) {
      if (!found.has(pid) && found.has(parent)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  return found;
}

/**
 * CPU spent across `work` by the server process, and by it and every process under it that was
 * there at the end. The client is gone by then, so it does not count; a process that started and
 * ended inside the window is lost (none does on these paths).
 */
async function serverCpuAcross<T>(
  serverPid: number,
  work: () => Promise<T>,
): Promise<{ value: T; serverMs: number; treeMs: number }> {
  const before = await processCpu();
  const value = await work();
  const after = await processCpu();
  const delta = (pid: number): number => (after.get(pid)?.cpuMs ?? 0) - (before.get(pid)?.cpuMs ?? 0);
  let treeMs = 0;
  for (const pid of descendants(after, serverPid)) treeMs += delta(pid);
  return { value, serverMs: delta(serverPid), treeMs };
}

export interface EgressMeasurement {
  name: string;
  connect: Summary;
  firstByte: Summary;
  /** MiB/s of each download. */
  throughput: Summary;
  clientCpuMsPerMiB: number;
  /** Only for sandbox paths: what the server process, and everything under it, spent per MiB. */
  serverCpuMsPerMiB: number | undefined;
  pathCpuMsPerMiB: number | undefined;
}

async function measure(
  name: string,
  runClient: RunClient,
  target: string,
  port: number,
  options: { rounds: number; downloads: number; downloadBytes: number; serverPid?: number },
): Promise<EgressMeasurement> {
  const args = (mode: string, count: number): string[] => [
    mode,
    target,
    String(port),
    EGRESS_BENCH_NAME,
    String(count),
  ];
  // Warm-up: the first connections pay for ARP, the path's own start-up, lazy code.
  await runClient(args("latency", 5));
  const latency = JSON.parse(await runClient(args("latency", options.rounds))) as LatencyOutput;
  const throughput: number[] = [];
  let clientCpuMs = 0;
  let serverMs = 0;
  let treeMs = 0;
  let mib = 0;
  for (let i = 0; i < options.downloads; i++) {
    const run = (): Promise<string> => runClient(args("download", options.downloadBytes));
    const measured =
      options.serverPid === undefined
        ? { value: await run(), serverMs: 0, treeMs: 0 }
        : await serverCpuAcross(options.serverPid, run);
    const download = JSON.parse(measured.value) as DownloadOutput;
    const downloadMiB = download.bytes / 2 ** 20;
    throughput.push(downloadMiB / (download.ms / 1000));
    clientCpuMs += download.clientCpuMs;
    serverMs += measured.serverMs;
    treeMs += measured.treeMs;
    mib += downloadMiB;
  }
  return {
    name,
    connect: summarize(latency.connectMs),
    firstByte: summarize(latency.firstByteMs),
    throughput: summarize(throughput),
    clientCpuMsPerMiB: clientCpuMs / mib,
    serverCpuMsPerMiB: options.serverPid === undefined ? undefined : serverMs / mib,
    pathCpuMsPerMiB: options.serverPid === undefined ? undefined : treeMs / mib,
  };
}

export interface EgressResults {
  downloadBytes: number;
  host: EgressMeasurement;
  paths: EgressMeasurement[];
}

export async function benchEgress(options: { quick: boolean; paths?: EgressPath[] }): Promise<EgressResults> {
  const rounds = options.quick ? 20 : 100;
  const downloads = options.quick ? 1 : 3;
  const downloadBytes = 64 * 2 ** 20;
  const network = await startTestNetwork({ zone: { [EGRESS_BENCH_NAME]: [] } });
  const dataDir = await mkdtemp(join(tmpdir(), "polydev-bench-"));
  // The server answers allow-list sandboxes' DNS from the test host's resolver.
  const server = await startServerProcess(dataDir, { POLYDEV_EGRESS_DNS_SERVERS: network.dnsServer });
  const client: BenchClient = { url: server.url, key: server.adminKey };
  const sandboxes: string[] = [];
  try {
    await network.setZone({ [EGRESS_BENCH_NAME]: [network.serverAddress] });
    const host = await measure(
      "host directly (baseline)",
      runOnHost,
      network.serverAddress,
      network.httpPort,
      {
        rounds,
        downloads,
        downloadBytes,
      },
    );
    const paths: EgressMeasurement[] = [];
    for (const path of options.paths ?? EGRESS_PATHS) {
      const id = await path.createSandbox(client, network);
      sandboxes.push(id);
      await path.hookEgress(client, id, network);
      paths.push(
        await measure(path.name, runInSandbox(client, id), path.target(network), network.httpPort, {
          rounds,
          downloads,
          downloadBytes,
          serverPid: server.pid,
        }),
      );
    }
    return { downloadBytes, host, paths };
  } finally {
    for (const id of sandboxes) {
      await fetch(`${client.url}/v1/sandboxes/${id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${client.key}` },
      }).catch(() => undefined);
    }
    await server.stop();
    await network.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export function egressTable(r: EgressResults): string {
  const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
  const cpu = (ms: number | undefined): string => (ms === undefined ? "—" : ms.toFixed(2));
  const all = [r.host, ...r.paths];
  return [
    "| path | connect p50 ms | connect + first byte p50 ms | p95 ms | vs host p50 | throughput MiB/s (p50) | vs host |",
    "|---|---|---|---|---|---|---|",
    ...all.map(
      (m) =>
        `| ${m.name} | ${fmt(m.connect.p50)} | ${fmt(m.firstByte.p50)} | ${fmt(m.firstByte.p95)} | ${ratio(m.firstByte.p50, r.host.firstByte.p50)} | ${m.throughput.p50.toFixed(0)} | ${ratio(m.throughput.p50, r.host.throughput.p50)} |`,
    ),
    "",
    `CPU per MiB downloaded (${r.downloadBytes / 2 ** 20} MiB × ${r.host.throughput.n}): the server process alone, the server with every process under it (sandbox, slirp4netns, relays; the client excluded), and the client itself.`,
    "",
    "| path | server ms/MiB | forwarding path ms/MiB | client ms/MiB |",
    "|---|---|---|---|",
    ...all.map(
      (m) =>
        `| ${m.name} | ${cpu(m.serverCpuMsPerMiB)} | ${cpu(m.pathCpuMsPerMiB)} | ${m.clientCpuMsPerMiB.toFixed(2)} |`,
    ),
  ].join("\n");
}
