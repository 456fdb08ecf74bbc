/**
 * Images and durable sandboxes benchmark, through the whole HTTP stack of a real `polydev up` with
 * images on (the storage pool, the default image polydev/base): create → first output byte, the
 * warm pool, fork of a sandbox holding 1 GiB, snapshot, stop → start, hibernate / resume of a
 * sandbox using 256 MiB, a cached Dockerfile rebuild, host memory per idle sandbox and 1,000 idle
 * sandboxes on one host. Every figure's baseline is measured in the same run. Needs root (the
 * storage pool is a loop-mounted file system).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { rawBwrapSamples } from "./baselines.js";
import type { ServerProcess } from "./server-process.js";
import { startServerProcess, unmountUnder } from "./server-process.js";
import type { Summary } from "./stats.js";
import { fmt, summarize, timeIt } from "./stats.js";

interface Client {
  url: string;
  key: string;
}

const DEFAULT_IMAGE = "polydev/base";
/** The host-wide cache the setup step fills (the server's default images.cacheDir). */
const CACHE_DIR = "/var/cache/polydev/images";
const MiB = 2 ** 20;

async function request(
  client: Client,
  method: string,
  path: string,
  body?: unknown,
  accept = "application/json",
): Promise<Response> {
  return fetch(`${client.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${client.key}`,
      accept,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** A JSON answer with the expected status, or an error that carries the server's message. */
async function expectJson<T>(response: Response, status: number, what: string): Promise<T> {
  const text = await response.text();
  if (response.status !== status) throw new Error(`${what}: HTTP ${response.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

async function createSandbox(client: Client, body: Record<string, unknown> = {}): Promise<string> {
  const created = await expectJson<{ id: string }>(
    await request(client, "POST", "/v1/sandboxes", body),
    201,
    "create",
  );
  return created.id;
}

async function destroy(client: Client, id: string): Promise<void> {
  const response = await request(client, "DELETE", `/v1/sandboxes/${id}`);
  await response.arrayBuffer();
}

async function destroyAll(client: Client, ids: string[], concurrency = 8): Promise<void> {
  await inPool(ids, concurrency, (id) => destroy(client, id));
}

/** Runs `work` over `items`, at most `concurrency` at once. */
async function inPool<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const index = next++;
      if (index >= items.length) return;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** Create a sandbox, exec `echo` as an event stream, stop the clock at its first stdout byte. */
async function createToFirstByte(client: Client): Promise<{ ms: number; createMs: number; id: string }> {
  let id = "";
  let createMs = Number.NaN;
  const { ms } = await timeIt(async () => {
    const created = await timeIt(() => createSandbox(client));
    id = created.value;
    createMs = created.ms;
    await execFirstByteTimed(client, id);
  });
  return { ms, createMs, id };
}

/**
 * Execs `echo` as an event stream and returns at its first stdout event, so the caller's clock
 * stops there; the rest of the stream is drained in the background and awaited by settleDrains.
 */
let pendingDrains: Promise<unknown>[] = [];
async function execFirstByteTimed(client: Client, id: string): Promise<void> {
  const response = await request(
    client,
    "POST",
    `/v1/sandboxes/${id}/exec`,
    { cmd: ["echo", "hello"] },
    "text/event-stream",
  );
  const reader = response.body?.getReader();
  if (!reader) throw new Error("no body");
  let seen = "";
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) throw new Error(`no stdout event (HTTP ${response.status}): ${seen.slice(0, 500)}`);
    seen += Buffer.from(chunk.value).toString();
    if (seen.includes("event: stdout")) break;
  }
  const drain = async (): Promise<void> => {
    for (;;) if ((await reader.read()).done) return;
  };
  // Handled at once (a failure is kept as the value), reported by settleDrains.
  pendingDrains.push(
    drain().then(
      () => undefined,
      (error: unknown) => error,
    ),
  );
}

async function settleDrains(): Promise<void> {
  const drains = pendingDrains;
  pendingDrains = [];
  const failure = (await Promise.all(drains)).find((outcome) => outcome !== undefined);
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error(String(failure));
}

async function exec(
  client: Client,
  id: string,
  cmd: string | string[],
  timeoutMs = 120_000,
): Promise<{ stdout: string; stderr: string; exitCode: number | null }> {
  return expectJson(
    await request(client, "POST", `/v1/sandboxes/${id}/exec`, { cmd, timeoutMs }),
    200,
    "exec",
  );
}

async function warmExec(client: Client, id: string): Promise<number> {
  const { ms, value } = await timeIt(() => exec(client, id, ["echo", "hi"]));
  if (value.stdout !== "hi\n") throw new Error(`wrong exec output: ${JSON.stringify(value)}`);
  return ms;
}

async function post201(client: Client, path: string, body: unknown, what: string): Promise<void> {
  await expectJson(await request(client, "POST", path, body), 201, what);
}

async function post200(client: Client, path: string, what: string): Promise<void> {
  await expectJson(await request(client, "POST", path, {}), 200, what);
}

async function sandboxStats(client: Client, id: string): Promise<{ memoryBytes: number }> {
  return expectJson(await request(client, "GET", `/v1/sandboxes/${id}/stats`), 200, "stats");
}

interface ImageState {
  state: "building" | "ready" | "failed";
  error: string | null;
  log?: string;
}

async function imageState(client: Client, name: string): Promise<ImageState | undefined> {
  const response = await request(client, "GET", `/v1/images/${encodeURIComponent(name)}`);
  if (response.status === 404) {
    await response.arrayBuffer();
    return undefined;
  }
  return expectJson<ImageState>(response, 200, `image ${name}`);
}

async function waitForImage(client: Client, name: string, timeoutMs: number, pollMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const image = await imageState(client, name);
    if (image?.state === "ready") return;
    if (image?.state === "failed")
      throw new Error(`image ${name} failed: ${image.error}\n${image.log ?? ""}`);
    if (Date.now() > deadline) throw new Error(`image ${name} not ready after ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

/** Builds by POST /v1/images, then follows the build log to its end: the clock stops when it is ready. */
async function buildImage(client: Client, name: string, dockerfile: string): Promise<void> {
  await expectJson(await request(client, "POST", "/v1/images", { name, dockerfile }), 202, `build ${name}`);
  const log = await request(client, "GET", `/v1/images/${encodeURIComponent(name)}/log?follow=true`);
  await log.arrayBuffer();
  const image = await imageState(client, name);
  if (image?.state !== "ready") throw new Error(`build ${name}: ${image?.state} ${image?.error}`);
}

async function deleteImage(client: Client, name: string): Promise<void> {
  const response = await request(client, "DELETE", `/v1/images/${encodeURIComponent(name)}`);
  await response.arrayBuffer();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/**
 * Sandboxes running under `pid`: its descendants whose program is the sandbox init
 * (/run/polydev-init, under bwrap or under an exec server) and whose parent is not one already.
 * A warm pool's spares are there before any create; the server's helper processes are not.
 */
async function sandboxProcesses(pid: number): Promise<number> {
  const parents = new Map<number, number>();
  const inits = new Set<number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const ppid = /^\d+ \(.*\) \S (\d+)/.exec(stat)?.[1];
    if (ppid === undefined) continue;
    parents.set(Number(entry), Number(ppid));
    const argv0 = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0")[0];
    if (argv0 === "/run/polydev-init") inits.add(Number(entry));
  }
  let count = 0;
  for (const init of inits) {
    if (inits.has(parents.get(init) ?? 0)) continue;
    let at = parents.get(init);
    while (at !== undefined && at > 1 && at !== pid) at = parents.get(at);
    if (at === pid) count++;
  }
  return count;
}

function run(file: string, args: string[], input?: string): { status: number | null; output: string } {
  const result = spawnSync(file, args, { input, encoding: "utf8", maxBuffer: 64 * MiB });
  return { status: result.status, output: `${result.stdout ?? ""}${result.stderr ?? ""}` };
}

/** Time to the first stdout byte of a command run on the host. */
function firstByteOf(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let ms = Number.NaN;
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.on("data", () => {
      if (Number.isNaN(ms)) ms = Number(process.hrtime.bigint() - start) / 1e6;
    });
    child.once("error", reject);
    child.once("close", (code) => {
      if (code !== 0 || Number.isNaN(ms)) reject(new Error(`${file} ${args.join(" ")}: ${code} ${stderr}`));
      else resolve(ms);
    });
  });
}

async function withServer<T>(
  env: Record<string, string>,
  body: (client: Client, server: ServerProcess) => Promise<T>,
): Promise<T> {
  const dataDir = await mkdtemp(join(tmpdir(), "polydev-bench-images-"));
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess(dataDir, {
      POLYDEV_IMAGES: "on",
      POLYDEV_IMAGE_CACHE_DIR: CACHE_DIR,
      POLYDEV_DEFAULT_IMAGE: DEFAULT_IMAGE,
      ...env,
    });
    const client: Client = { url: server.url, key: server.adminKey };
    // The default image is registered in the background at start-up (from the host-wide cache).
    await waitForImage(client, DEFAULT_IMAGE, 15 * 60_000, 250);
    return await body(client, server);
  } finally {
    await server?.stop();
    await unmountUnder(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** A 1 GiB byte copy on the host's own file system, synced: what a fork would cost without reflinks. */
async function byteCopyBaseline(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-bench-copy-"));
  try {
    const source = join(dir, "source");
    const made = run("dd", [
      "if=/dev/urandom",
      `of=${source}`,
      "bs=1M",
      "count=1024",
      "conv=fsync",
      "status=none",
    ]);
    if (made.status !== 0) throw new Error(`writing 1 GiB failed: ${made.output}`);
    const { ms } = await timeIt(async () => {
      const copied = run("cp", ["--reflink=never", source, join(dir, "copy")]);
      if (copied.status !== 0) throw new Error(`byte copy failed: ${copied.output}`);
      run("sync", ["-f", join(dir, "copy")]);
    });
    return ms;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const DOCKERFILE = [
  `FROM ${DEFAULT_IMAGE}`,
  // RUN runs as the parent image's USER (polydev/base's is "user"), as in Docker.
  "RUN echo one > /home/user/bench-step-1",
  "RUN echo two > /home/user/bench-step-2",
  "RUN echo three > /home/user/bench-step-3",
  "",
].join("\n");

/** Python holding 256 MiB resident (bytes filled by memset, not lazily mapped zero pages). */
const HOLD_256_MIB =
  "import time\nb = b'\\x01' * (256 << 20)\nprint('ready', flush=True)\ntime.sleep(10**6)\n";

/** A measured figure, or why it was not measured (a capability absent, a failure found). */
type Figure = Summary | string;

function progress(line: string): void {
  process.stderr.write(`images bench: ${line}\n`);
}

/** Runs one part of the benchmark; a failure becomes that part's figure instead of ending the run. */
async function attempt<T>(what: string, body: () => Promise<T>): Promise<T | string> {
  try {
    const value = await body();
    progress(`${what}: ${JSON.stringify(value)}`);
    return value;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    progress(`${what} failed: ${message}`);
    return `failed: ${message}`;
  }
}

export interface ImagesBench {
  rawBwrap: Summary;
  byteCopy1GiBMs: number;
  createToFirstByte: Figure;
  /** Of that, POST /v1/sandboxes → 201 alone. */
  createOnly: Figure;
  warmPool: Figure;
  docker: { polydev: Summary; docker: Summary } | string;
  warmExec: Figure;
  fork: { fork1GiB: Summary; snapshot: Summary } | string;
  stopStart: { stop: Summary; startToFirstByte: Summary; stopStartToFirstByte: Summary } | string;
  hibernation:
    | {
        hibernate: Summary;
        resume: Summary;
        resumeToFirstByte: Summary;
        hibernatedMemoryMiB: number;
        residentBeforeMiB: number;
      }
    | string;
  build: { firstBuildMs: number; cachedRebuild: Summary } | string;
  idle:
    | {
        count: number;
        createMs: number;
        failures: number;
        firstError: string | undefined;
        randomExec: Summary;
        /** Warm exec on one sandbox of the set, interleaved with the random ones (the ratio's baseline). */
        warmExec: Summary;
        memoryPerSandboxMiB: number;
        serverRssPerSandboxMiB: number;
        cgroupPerSandboxMiB: number;
      }
    | string;
  loadAverage: { before: number; after: number };
}

/**
 * Create → first output byte of echo, destroyed after each; one unmeasured warm-up first. The
 * create alone (POST → 201) goes to `creates` when given.
 */
async function createSamples(
  client: Client,
  rounds: number,
  pauseMs = 0,
  creates?: number[],
): Promise<Summary> {
  const samples: number[] = [];
  for (let i = 0; i <= rounds; i++) {
    if (pauseMs > 0) await sleep(pauseMs);
    const result = await createToFirstByte(client);
    await settleDrains();
    if (i > 0) samples.push(result.ms);
    if (i > 0) creates?.push(result.createMs);
    await destroy(client, result.id);
  }
  return summarize(samples);
}

async function warmExecSamples(client: Client, rounds: number): Promise<Summary> {
  const warm = await createSandbox(client);
  try {
    for (let i = 0; i < 20; i++) await warmExec(client, warm);
    const samples: number[] = [];
    for (let i = 0; i < rounds * 5; i++) samples.push(await warmExec(client, warm));
    return summarize(samples);
  } finally {
    await destroy(client, warm);
  }
}

/** Fork {count: 1} and snapshot of a sandbox holding 1 GiB of files (16 × 64 MiB of random bytes, synced). */
async function forkAndSnapshot(
  client: Client,
  rounds: number,
): Promise<{ fork1GiB: Summary; snapshot: Summary }> {
  const big = await createSandbox(client, { diskMb: 4096, memoryMb: 2048 });
  const forkIds: string[] = [];
  const snapshotNames: string[] = [];
  try {
    const wrote = await exec(
      client,
      big,
      "mkdir -p data && for i in $(seq 1 16); do dd if=/dev/urandom of=data/f$i bs=1M count=64 status=none || exit 1; done && sync && du -sm data",
      600_000,
    );
    if (wrote.exitCode !== 0) throw new Error(`writing 1 GiB in the sandbox failed: ${wrote.stderr}`);
    const forks: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // A little new data before each fork, as a working sandbox would have.
      await exec(client, big, `dd if=/dev/urandom of=note-${i} bs=4k count=16 status=none`);
      const { ms, value } = await timeIt(async () =>
        expectJson<{ sandboxes: { id: string }[] }>(
          await request(client, "POST", `/v1/sandboxes/${big}/fork`, { count: 1 }),
          201,
          "fork",
        ),
      );
      forks.push(ms);
      forkIds.push(...value.sandboxes.map((s) => s.id));
    }
    // A fork holds the files: checked once, outside the clock.
    const forkDu = await exec(client, forkIds[0] ?? "", "du -sm data");
    if (forkDu.stdout !== wrote.stdout) throw new Error(`fork differs: ${forkDu.stdout} vs ${wrote.stdout}`);
    await destroyAll(client, forkIds.splice(0));

    const snapshots: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const name = `bench/snapshot-${i}`;
      snapshotNames.push(name);
      const path = `/v1/sandboxes/${big}/snapshots`;
      snapshots.push((await timeIt(() => post201(client, path, { name }, "snapshot"))).ms);
      const state = await imageState(client, name);
      if (state?.state !== "ready") throw new Error(`snapshot ${name} is ${state?.state}, not ready`);
    }
    return { fork1GiB: summarize(forks), snapshot: summarize(snapshots) };
  } finally {
    await destroyAll(client, [...forkIds, big]);
    for (const name of snapshotNames) await deleteImage(client, name);
  }
}

/** POST stop, then POST start and exec echo to its first output byte. */
async function stopStart(client: Client, rounds: number): Promise<Exclude<ImagesBench["stopStart"], string>> {
  const durable = await createSandbox(client);
  try {
    await warmExec(client, durable);
    const stops: number[] = [];
    const starts: number[] = [];
    const both: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const stop = (await timeIt(() => post200(client, `/v1/sandboxes/${durable}/stop`, "stop"))).ms;
      const start = (
        await timeIt(async () => {
          await post200(client, `/v1/sandboxes/${durable}/start`, "start");
          await execFirstByteTimed(client, durable);
        })
      ).ms;
      await settleDrains();
      stops.push(stop);
      starts.push(start);
      both.push(stop + start);
    }
    return {
      stop: summarize(stops),
      startToFirstByte: summarize(starts),
      stopStartToFirstByte: summarize(both),
    };
  } finally {
    await destroy(client, durable);
  }
}

/** Hibernate / resume of a sandbox whose python3 holds 256 MiB resident. */
async function hibernation(
  client: Client,
  rounds: number,
): Promise<Exclude<ImagesBench["hibernation"], string>> {
  const sleeper = await createSandbox(client, { memoryMb: 1024 });
  try {
    const holder = { cmd: ["python3", "-c", HOLD_256_MIB] };
    await post201(client, `/v1/sandboxes/${sleeper}/processes`, holder, "process");
    let resident = 0;
    for (let waited = 0; resident < 256 * MiB && waited < 30_000; waited += 200) {
      await sleep(200);
      resident = (await sandboxStats(client, sleeper)).memoryBytes;
    }
    if (resident < 256 * MiB) throw new Error(`the sandbox holds only ${resident} bytes`);
    const hibernates: number[] = [];
    const resumes: number[] = [];
    const resumeFirst: number[] = [];
    let hibernatedMemory = Number.NaN;
    const hibernate = (): Promise<void> => post200(client, `/v1/sandboxes/${sleeper}/hibernate`, "hibernate");
    const resume = (): Promise<void> => post200(client, `/v1/sandboxes/${sleeper}/resume`, "resume");
    for (let i = 0; i < rounds; i++) {
      hibernates.push((await timeIt(hibernate)).ms);
      hibernatedMemory = (await sandboxStats(client, sleeper)).memoryBytes;
      resumes.push((await timeIt(resume)).ms);
      await warmExec(client, sleeper);
      // Resume → first output, the user's view: hibernate again (untimed), then resume + exec.
      await hibernate();
      const { ms } = await timeIt(async () => {
        await resume();
        await execFirstByteTimed(client, sleeper);
      });
      await settleDrains();
      resumeFirst.push(ms);
    }
    const alive = await exec(client, sleeper, "pgrep -c python3");
    if (alive.stdout.trim() !== "1")
      throw new Error(`the python3 process is gone after resume: ${alive.stdout}`);
    return {
      hibernate: summarize(hibernates),
      resume: summarize(resumes),
      resumeToFirstByte: summarize(resumeFirst),
      hibernatedMemoryMiB: hibernatedMemory / MiB,
      residentBeforeMiB: resident / MiB,
    };
  } finally {
    await destroy(client, sleeper);
  }
}

/** A 3-step Dockerfile: built once, then rebuilt (every layer cached) under new names. */
async function rebuild(client: Client, rounds: number): Promise<Exclude<ImagesBench["build"], string>> {
  const names = ["bench/three-steps"];
  try {
    const firstBuild = await timeIt(() => buildImage(client, "bench/three-steps", DOCKERFILE));
    const rebuilds: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const name = `bench/three-steps-${i}`;
      names.push(name);
      rebuilds.push((await timeIt(() => buildImage(client, name, DOCKERFILE))).ms);
    }
    return { firstBuildMs: firstBuild.ms, cachedRebuild: summarize(rebuilds) };
  } finally {
    for (const name of names) await deleteImage(client, name);
  }
}

/** Idle sandboxes on one host: all created (8 at a time), their memory, then exec on random ones. */
async function idleSandboxes(
  client: Client,
  server: ServerProcess,
  count: number,
  rounds: number,
): Promise<Exclude<ImagesBench["idle"], string>> {
  const rssBefore = await rssBytes(server.pid);
  const errors: string[] = [];
  const ids: string[] = [];
  try {
    const created = await timeIt(() =>
      inPool(
        Array.from({ length: count }, (_, i) => i),
        8,
        async (i) => {
          try {
            ids.push(await createSandbox(client));
          } catch (error) {
            errors.push(error instanceof Error ? error.message : String(error));
          }
          if ((i + 1) % 100 === 0) progress(`${i + 1} of ${count} idle sandboxes asked for`);
        },
      ),
    );
    let cgroupBytes = 0;
    for (const id of ids) cgroupBytes += (await sandboxStats(client, id)).memoryBytes;
    const serverDelta = ((await rssBytes(server.pid)) - rssBefore) / ids.length;
    const cgroupPer = cgroupBytes / ids.length;
    // The baseline, interleaved with the measurement so both see the same host load: a warm exec
    // on one sandbox of the set, run over and over.
    const warm = ids[0];
    if (warm === undefined) throw new Error(`no sandbox was created: ${errors[0]}`);
    for (let i = 0; i < 20; i++) await warmExec(client, warm);
    const randomExec: number[] = [];
    const warmSamples: number[] = [];
    for (let i = 0; i < rounds * 5; i++) {
      randomExec.push(await warmExec(client, ids[1 + Math.floor(Math.random() * (ids.length - 1))] ?? warm));
      warmSamples.push(await warmExec(client, warm));
    }
    return {
      count,
      createMs: created.ms,
      failures: errors.length,
      firstError: errors[0],
      randomExec: summarize(randomExec),
      warmExec: summarize(warmSamples),
      memoryPerSandboxMiB: (serverDelta + cgroupPer) / MiB,
      serverRssPerSandboxMiB: serverDelta / MiB,
      cgroupPerSandboxMiB: cgroupPer / MiB,
    };
  } finally {
    await destroyAll(client, ids);
  }
}

export async function benchImages(options: { quick: boolean }): Promise<ImagesBench | string> {
  if (process.getuid?.() !== 0) return "skipped: the storage pool needs root (loop devices and mounts)";
  const rounds = options.quick ? 5 : 20;
  const fewer = options.quick ? 3 : 10;
  const idleCount = options.quick ? 100 : 1000;
  const loadBefore = loadavg()[0] ?? Number.NaN;

  // Baselines first, on a quiet host.
  const rawBwrap = summarize(await rawBwrapSamples(rounds * 2));
  const byteCopy1GiBMs = await byteCopyBaseline();
  progress(`baselines: raw bwrap p50 ${fmt(rawBwrap.p50)} ms, 1 GiB byte copy ${fmt(byteCopy1GiBMs)} ms`);

  const creates: number[] = [];
  const main = await withServer({}, async (client, server) => ({
    createToFirstByte: await attempt("create → first byte", () => createSamples(client, rounds, 0, creates)),
    createOnly: creates.length > 0 ? summarize(creates) : "not measured",
    warmExec: await attempt("warm exec", () => warmExecSamples(client, rounds)),
    fork: await attempt("fork and snapshot", () => forkAndSnapshot(client, fewer)),
    stopStart: await attempt("stop → start", () => stopStart(client, rounds)),
    hibernation: await attempt("hibernate / resume", () => hibernation(client, fewer)),
    build: await attempt("cached rebuild", () => rebuild(client, fewer)),
    idle: await attempt("idle sandboxes", () => idleSandboxes(client, server, idleCount, rounds)),
  }));
  const warmPool = await attempt("warm pool", () => benchWarmPool(rounds));
  const docker = await attempt("docker run", () => benchDocker(rounds));
  return {
    rawBwrap,
    byteCopy1GiBMs,
    ...main,
    warmPool,
    docker,
    loadAverage: { before: loadBefore, after: loadavg()[0] ?? Number.NaN },
  };
}

/** Create → first byte when a warm pool of the default image waits (its own server, so the cold figure stays cold). */
async function benchWarmPool(rounds: number): Promise<Figure> {
  const size = 4;
  return withServer({ POLYDEV_WARM_POOL: `${DEFAULT_IMAGE}=${size}` }, async (client, server) => {
    // A pool's sandboxes are the server's descendants; with none after a while, there is no pool.
    let waiting = 0;
    for (let waited = 0; waited < 30_000; waited += 500) {
      waiting = await sandboxProcesses(server.pid);
      if (waiting > 0 && waited >= 5_000) break;
      await sleep(500);
    }
    if (waiting === 0) return "n/a (no warm pool)";
    // Give the pool time to refill between claims: each claim should find one waiting.
    return createSamples(client, rounds, 1_500);
  });
}

/** `docker run` of the same image (its root imported), when a Docker daemon answers. */
async function benchDocker(rounds: number): Promise<ImagesBench["docker"]> {
  if (run("docker", ["info"]).status !== 0) return "n/a (no Docker daemon)";
  const bases = (await readdir(CACHE_DIR)).filter(
    (name) => name.startsWith("base-") && !name.endsWith(".lock"),
  );
  const root = bases[0];
  if (!root) return "n/a (no cached default image to import)";
  const tag = "polydev-bench/base:latest";
  const imported = spawnSync("sh", [
    "-c",
    'tar -C "$0" -c . | docker import - "$1"',
    join(CACHE_DIR, root),
    tag,
  ]);
  if (imported.status !== 0) return `n/a (docker import failed: ${imported.stderr})`;
  try {
    const args = ["run", "--rm", "--network", "none", tag, "echo", "hello"];
    await firstByteOf("docker", args);
    const dockerSamples: number[] = [];
    for (let i = 0; i < rounds; i++) dockerSamples.push(await firstByteOf("docker", args));
    const polydev = await withServer({}, (client) => createSamples(client, rounds));
    return { polydev, docker: summarize(dockerSamples) };
  } finally {
    run("docker", ["rmi", tag]);
  }
}

/** A table cell: no pipes or line breaks from an error message. */
const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");

export function imagesTable(result: ImagesBench | string): string {
  if (typeof result === "string") return result;
  const r = result;
  const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
  const row = (name: string, s: Figure, vs: (s: Summary) => string, budget: string): string =>
    typeof s === "string"
      ? `| ${name} | ${cell(s)} | | | | ${budget} |`
      : `| ${name} | ${fmt(s.p50)} | ${fmt(s.p95)} | ${s.n} | ${vs(s)} | ${budget} |`;
  const none = (): string => "";
  const part = <T extends object>(value: T | string, pick: (value: T) => Figure): Figure =>
    typeof value === "string" ? value : pick(value);
  const vsBwrap = (s: Summary): string => `${ratio(s.p50, r.rawBwrap.p50)} raw bwrap`;
  const docker =
    typeof r.docker === "string"
      ? row("the same vs `docker run` of the same image", r.docker, none, "≤ 0.2×")
      : [
          row(
            "baseline: `docker run --rm --network none` → first byte",
            r.docker.docker,
            () => "1.00×",
            "baseline",
          ),
          row(
            "create → first byte, measured beside docker",
            r.docker.polydev,
            (s) => `${ratio(s.p50, (r.docker as { docker: Summary }).docker.p50)} docker run`,
            "≤ 0.2×",
          ),
        ].join("\n");
  const build = r.build;
  const idle = r.idle;
  const hib = r.hibernation;
  const lines = [
    "| figure | p50 ms | p95 ms | n | vs baseline (p50) | budget |",
    "|---|---|---|---|---|---|",
    row("baseline: raw bwrap --unshare-all /bin/true", r.rawBwrap, () => "1.00×", "baseline"),
    row(
      "create from the default image → first output byte (HTTP, exec echo)",
      r.createToFirstByte,
      vsBwrap,
      "≤ 60 ms and ≤ 4×",
    ),
    row("of which POST /v1/sandboxes → 201", r.createOnly, vsBwrap, ""),
    row("the same from the warm pool", r.warmPool, vsBwrap, "≤ 20 ms"),
    docker,
    `| baseline: byte copy of 1 GiB on the host (cp --reflink=never + sync) | ${fmt(r.byteCopy1GiBMs)} | | 1 | 1.00× | baseline |`,
    row(
      "fork {count: 1} of a sandbox holding 1 GiB of files → 201",
      part(r.fork, (f) => f.fork1GiB),
      (s) => `${ratio(s.p50, r.byteCopy1GiBMs)} byte copy`,
      "≤ 150 ms",
    ),
    row(
      "snapshot of the same sandbox (POST …/snapshots → 201)",
      part(r.fork, (f) => f.snapshot),
      none,
      "≤ 200 ms",
    ),
    row(
      "stop (POST …/stop → 200)",
      part(r.stopStart, (s) => s.stop),
      none,
      "",
    ),
    row(
      "start → first output byte (POST …/start, exec echo)",
      part(r.stopStart, (s) => s.startToFirstByte),
      none,
      "",
    ),
    row(
      "stop → start → first output byte",
      part(r.stopStart, (s) => s.stopStartToFirstByte),
      vsBwrap,
      "≤ 150 ms",
    ),
    row(
      "hibernate, python3 holding 256 MiB (freezes; no CRIU)",
      part(hib, (h) => h.hibernate),
      none,
      "report",
    ),
    row(
      "resume (POST …/resume → 200)",
      part(hib, (h) => h.resume),
      none,
      "≤ 1 s",
    ),
    row(
      "resume → first output byte (exec echo)",
      part(hib, (h) => h.resumeToFirstByte),
      none,
      "",
    ),
    typeof build === "string"
      ? row("first build of a 3-step Dockerfile", build, none, "baseline")
      : `| baseline: first build of a 3-step Dockerfile (FROM polydev/base + 3 RUN) | ${fmt(build.firstBuildMs)} | | 1 | 1.00× | baseline |`,
    row(
      "rebuild of the same Dockerfile, all layers cached → ready",
      part(build, (b) => b.cachedRebuild),
      (s) => (typeof build === "string" ? "" : `${ratio(s.p50, build.firstBuildMs)} first build`),
      "≤ 1 s",
    ),
    row("warm exec round trip (HTTP, echo, one sandbox, nothing else running)", r.warmExec, none, ""),
    row(
      `baseline: warm exec on one of the ${idleCountText(idle)} idle sandboxes, again and again (interleaved)`,
      part(idle, (i) => i.warmExec),
      () => "1.00×",
      "baseline",
    ),
    row(
      `exec on a random one of the ${idleCountText(idle)} idle sandboxes`,
      part(idle, (i) => i.randomExec),
      (s) => (typeof idle === "string" ? "" : `${ratio(s.p50, idle.warmExec.p50)} warm exec`),
      "≤ 2×",
    ),
    "",
  ];
  if (typeof hib !== "string") {
    lines.push(
      `Memory charged to the hibernated sandbox: ${hib.hibernatedMemoryMiB.toFixed(0)} MiB (${hib.residentBeforeMiB.toFixed(0)} MiB before). The namespace driver hibernates by freezing the sandbox's processes, not by writing them to disk: bookworm's CRIU 3.17 cannot run on this kernel.`,
      "",
    );
  }
  if (typeof idle !== "string") {
    lines.push(
      "| idle sandboxes on one host | created | failures | total create ms (8 at a time) | budget |",
      "|---|---|---|---|---|",
      `| ${idle.count} | ${idle.count - idle.failures} | ${idle.failures}${idle.firstError ? ` (${cell(idle.firstError)})` : ""} | ${idle.createMs.toFixed(0)} | 0 failures |`,
      "",
      "| host memory per idle sandbox (default image) | MiB | budget |",
      "|---|---|---|",
      `| sandbox cgroup (its processes, page tables, kernel memory) | ${idle.cgroupPerSandboxMiB.toFixed(2)} | |`,
      `| server RSS growth per sandbox | ${idle.serverRssPerSandboxMiB.toFixed(2)} | |`,
      `| total | ${idle.memoryPerSandboxMiB.toFixed(2)} | ≤ 10 MiB |`,
      "",
    );
  }
  lines.push(
    `Host load average ${r.loadAverage.before.toFixed(2)} before, ${r.loadAverage.after.toFixed(2)} after (${cpus().length} CPUs, shared with other jobs): compare the ratios.`,
  );
  return lines.join("\n");
}

function idleCountText(idle: ImagesBench["idle"]): string {
  return typeof idle === "string" ? "requested" : String(idle.count);
}

export async function probeMain(): Promise<void> {
  const which = process.env.PROBE ?? "warm";
  if (which === "warm") {
    await withServer({ POLYDEV_WARM_POOL: `${DEFAULT_IMAGE}=4` }, async (client) => {
      await sleep(8000);
      const total: number[] = []; const createOnly: number[] = [];
      for (let i = 0; i < 12; i++) {
        await sleep(1500);
        const r = await createToFirstByte(client);
        await settleDrains();
        if (i > 1) { total.push(r.ms); createOnly.push(r.createMs); }
        await destroy(client, r.id);
      }
      console.log("warm total", summarize(total), "create", summarize(createOnly));
    });
  } else {
    await withServer({}, async (client) => {
      const r = await forkAndSnapshot(client, 6);
      console.log("fork", r.fork1GiB, "snapshot", r.snapshot);
    });
  }
}
await probeMain();
