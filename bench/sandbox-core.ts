/**
 * Sandbox core benchmark, through the whole HTTP stack of a real server: create → first output
 * byte of `echo`, warm exec round trip, concurrent creation, and host memory per idle sandbox.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { rawBwrapSamples, rawSpawnSamples } from "./baselines.js";
import { startServerProcess } from "./server-process.js";
import type { Summary } from "./stats.js";
import { fmt, summarize, timeIt } from "./stats.js";

interface Client {
  url: string;
  key: string;
}

async function post(
  client: Client,
  path: string,
  body: unknown,
  accept = "application/json",
): Promise<Response> {
  return fetch(`${client.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${client.key}`, "content-type": "application/json", accept },
    body: JSON.stringify(body),
  });
}

async function createSandbox(client: Client): Promise<string> {
  const response = await post(client, "/v1/sandboxes", {});
  const body = (await response.json()) as { id?: string; error?: { message: string } };
  if (response.status !== 201 || !body.id) throw new Error(`create failed: ${body.error?.message}`);
  return body.id;
}

async function destroy(client: Client, id: string): Promise<void> {
  await fetch(`${client.url}/v1/sandboxes/${id}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${client.key}` },
  });
}

/** Create a sandbox, exec `echo` as an event stream, stop the clock at its first stdout byte. */
async function createToFirstByte(client: Client): Promise<{ ms: number; id: string }> {
  const start = process.hrtime.bigint();
  const id = await createSandbox(client);
  const response = await post(
    client,
    `/v1/sandboxes/${id}/exec`,
    { cmd: ["echo", "hello"] },
    "text/event-stream",
  );
  const reader = response.body?.getReader();
  if (!reader) throw new Error("no body");
  let seen = "";
  let ms = Number.NaN;
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) break;
    seen += Buffer.from(chunk.value).toString();
    if (Number.isNaN(ms) && seen.includes("event: stdout"))
      ms = Number(process.hrtime.bigint() - start) / 1e6;
  }
  if (Number.isNaN(ms)) throw new Error(`no stdout event: ${seen}`);
  return { ms, id };
}

async function warmExec(client: Client, id: string): Promise<number> {
  const { ms, value } = await timeIt(async () => {
    const response = await post(client, `/v1/sandboxes/${id}/exec`, { cmd: ["echo", "hi"] });
    return (await response.json()) as { stdout: string };
  });
  if (value.stdout !== "hi\n") throw new Error("wrong exec output");
  return ms;
}

export interface SandboxCoreResults {
  rawSpawn: Summary;
  rawBwrap: Summary;
  createToFirstByte: Summary;
  warmExec: Summary;
  concurrent: { count: number; totalMs: number; failures: number; firstError: string | undefined }[];
  memoryPerIdleSandboxMiB: number;
  serverRssPerSandboxMiB: number;
  sandboxCgroupPerSandboxMiB: number;
  /** The host's 1-minute load average before and after the latency measurements. */
  loadAverage: { before: number; after: number };
}

async function stats(client: Client, id: string): Promise<{ memoryBytes: number }> {
  const response = await fetch(`${client.url}/v1/sandboxes/${id}/stats`, {
    headers: { authorization: `Bearer ${client.key}` },
  });
  return (await response.json()) as { memoryBytes: number };
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

export async function benchSandboxCore(options: { quick: boolean }): Promise<SandboxCoreResults> {
  const dataDir = await mkdtemp(join(tmpdir(), "polydev-bench-"));
  // The server runs as its own process, as `polydev up` does: the client's work and the
  // server's do not share one event loop, and the server's size is its real size.
  const server = await startServerProcess(dataDir);
  try {
    const client: Client = { url: server.url, key: server.adminKey };
    const rounds = options.quick ? 10 : 40;
    const loadBefore = loadavg()[0] ?? Number.NaN;

    // Baselines first, on a quiet server: sampled in between the measurements they would also
    // pay for the server's own background work (a destroyed sandbox's teardown, say).
    const rawSpawn = summarize(await rawSpawnSamples(rounds * 5));
    const rawBwrap = summarize(await rawBwrapSamples(rounds * 2));

    // Warm-up: the first request pays for JIT and lazy module loads.
    await destroy(client, (await createToFirstByte(client)).id);
    const firstByte: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const result = await createToFirstByte(client);
      firstByte.push(result.ms);
      await destroy(client, result.id);
    }

    const warm = await createSandbox(client);
    for (let i = 0; i < 20; i++) await warmExec(client, warm);
    const execSamples: number[] = [];
    for (let i = 0; i < rounds * 5; i++) execSamples.push(await warmExec(client, warm));
    await destroy(client, warm);
    const loadAfter = loadavg()[0] ?? Number.NaN;

    const concurrent: SandboxCoreResults["concurrent"] = [];
    let memory = { perSandbox: Number.NaN, server: Number.NaN, cgroup: Number.NaN };
    for (const count of options.quick ? [100] : [100, 300]) {
      const rssBefore = await rssBytes(server.pid);
      const errors: string[] = [];
      const { ms, value: ids } = await timeIt(() =>
        Promise.all(
          Array.from({ length: count }, () =>
            createSandbox(client).catch((error: unknown) => {
              errors.push(error instanceof Error ? error.message : String(error));
              return undefined;
            }),
          ),
        ),
      );
      const created = ids.filter((id): id is string => id !== undefined);
      concurrent.push({ count, totalMs: ms, failures: errors.length, firstError: errors[0] });
      const serverDelta = ((await rssBytes(server.pid)) - rssBefore) / created.length;
      let cgroupBytes = 0;
      for (const id of created) cgroupBytes += (await stats(client, id)).memoryBytes;
      const cgroupPer = cgroupBytes / created.length;
      memory = {
        perSandbox: (serverDelta + cgroupPer) / 2 ** 20,
        server: serverDelta / 2 ** 20,
        cgroup: cgroupPer / 2 ** 20,
      };
      for (let i = 0; i < created.length; i += 25) {
        await Promise.all(created.slice(i, i + 25).map((id) => destroy(client, id)));
      }
    }

    return {
      rawSpawn,
      rawBwrap,
      createToFirstByte: summarize(firstByte),
      warmExec: summarize(execSamples),
      concurrent,
      memoryPerIdleSandboxMiB: memory.perSandbox,
      serverRssPerSandboxMiB: memory.server,
      sandboxCgroupPerSandboxMiB: memory.cgroup,
      loadAverage: { before: loadBefore, after: loadAfter },
    };
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export function sandboxCoreTable(r: SandboxCoreResults): string {
  const ratio = (a: number, b: number): string => `${(a / b).toFixed(1)}×`;
  const rows = [
    "| measurement | p50 ms | p95 ms | vs raw bwrap p50 | vs raw spawn p50 | budget |",
    "|---|---|---|---|---|---|",
    `| raw process spawn (/bin/true) | ${fmt(r.rawSpawn.p50)} | ${fmt(r.rawSpawn.p95)} | | 1.0× | baseline |`,
    `| raw bwrap --unshare-all /bin/true | ${fmt(r.rawBwrap.p50)} | ${fmt(r.rawBwrap.p95)} | 1.0× | ${ratio(r.rawBwrap.p50, r.rawSpawn.p50)} | baseline |`,
    `| create → first output byte of echo (HTTP) | ${fmt(r.createToFirstByte.p50)} | ${fmt(r.createToFirstByte.p95)} | ${ratio(r.createToFirstByte.p50, r.rawBwrap.p50)} | ${ratio(r.createToFirstByte.p50, r.rawSpawn.p50)} | p50 ≤ 25 ms |`,
    `| warm exec round trip (HTTP, echo) | ${fmt(r.warmExec.p50)} | ${fmt(r.warmExec.p95)} | ${ratio(r.warmExec.p50, r.rawBwrap.p50)} | ${ratio(r.warmExec.p50, r.rawSpawn.p50)} | p50 ≤ 5 ms |`,
    "",
    `Host load average ${r.loadAverage.before.toFixed(2)} before, ${r.loadAverage.after.toFixed(2)} after the latency measurements (${cpus().length} CPUs): on a shared machine, compare the ratios.`,
    "",
    "| concurrent creates | total ms | failures | budget |",
    "|---|---|---|---|",
    ...r.concurrent.map(
      (c) =>
        `| ${c.count} | ${c.totalMs.toFixed(0)} | ${c.failures}${c.firstError ? ` (${c.firstError})` : ""} | ≥ 300 without errors |`,
    ),
    "",
    "| host memory per idle sandbox | MiB | budget |",
    "|---|---|---|",
    `| sandbox cgroup (its processes, page tables, kernel memory) | ${r.sandboxCgroupPerSandboxMiB.toFixed(2)} | |`,
    `| server RSS growth per sandbox | ${r.serverRssPerSandboxMiB.toFixed(2)} | |`,
    `| total | ${r.memoryPerIdleSandboxMiB.toFixed(2)} | ≤ 10 MiB |`,
  ];
  return rows.join("\n");
}
