/**
 * The gvisor driver against raw runsc, in one run (`npm run bench -- --only gvisor`):
 * - raw: `runsc run` of the driver's own bundle (same root, mounts, limits and flags) whose
 *   process is `/bin/echo`, to its first stdout byte;
 * - driver: create → connect → exec `echo` → first stdout byte;
 * - warm claim: a spare made ahead of time (and left without a connection, as in a pool) taken by
 *   `adopt` with an environment → connect → exec `echo` → first stdout byte;
 * - host memory per idle sandbox (PSS of the processes in its host cgroup: Sentry, gofer,
 *   ptrace stubs);
 * - concurrent creates, each to its first exec output.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxHandle, SandboxSpec } from "@polydev/core";
import { GvisorDriver } from "@polydev/driver-gvisor";
import { BASE_IMAGE_ENV, buildEnvironmentFrom, ensureBaseRootfs, ensureToolbox } from "@polydev/images";
import type { ConcurrentCreates } from "./driver-timing.js";
import {
  concurrentCreates,
  concurrentLine,
  connectToFirstOutput,
  createToFirstOutput,
} from "./driver-timing.js";
import type { Summary } from "./stats.js";
import { fmt, summarize, timeIt } from "./stats.js";

export interface GvisorBench {
  raw: Summary;
  driver: Summary;
  warmClaim: Summary;
  idleMemoryBytes: number[];
  concurrent: ConcurrentCreates;
}

const CGROUP_PARENT = `polydev-gvisor-bench-${process.pid}`;
const RUNSC = "/usr/bin/runsc";
/** The host-wide image cache the setup step fills (the server's default images.cacheDir). */
const IMAGE_CACHE_DIR = "/var/cache/polydev/images";

function progress(line: string): void {
  process.stderr.write(`bench gvisor: ${line}\n`);
}

/** `runsc run` of `bundle` in the foreground, to the first byte its process writes. */
function rawRunToFirstByte(stateDir: string, bundle: string, id: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let first: number | undefined;
    const child = spawn(
      RUNSC,
      [
        `--root=${stateDir}`,
        "--platform=ptrace",
        "--network=none",
        "--host-uds=create",
        "run",
        `--bundle=${bundle}`,
        id,
      ],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    child.stdout.once("data", () => {
      first = Number(process.hrtime.bigint() - start) / 1e6;
    });
    child.stdout.resume();
    child.once("error", reject);
    child.once("close", () => {
      if (first === undefined) reject(new Error("raw runsc wrote nothing"));
      else resolve(first);
    });
  });
}

async function cgroupPss(sandboxId: string): Promise<number> {
  const procs = await readFile(
    `/sys/fs/cgroup/memory/${CGROUP_PARENT}/${sandboxId}/cgroup.procs`,
    "utf8",
  ).catch(() => "");
  let total = 0;
  for (const pid of procs.split("\n").filter(Boolean)) {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
    const pss = /^Pss:\s+(\d+) kB/m.exec(rollup);
    total += Number(pss?.[1] ?? 0) * 1024;
  }
  return total;
}

export async function benchGvisor({ quick }: { quick: boolean }): Promise<GvisorBench | string> {
  if (process.getuid?.() !== 0) return "skipped: needs root";
  const rounds = quick ? 5 : 20;
  const concurrentCount = quick ? 10 : 50;
  const env = buildEnvironmentFrom(process.env);
  const [rootfs, toolbox] = await Promise.all([
    ensureBaseRootfs(IMAGE_CACHE_DIR, { onProgress: progress, env }),
    ensureToolbox(IMAGE_CACHE_DIR, { onProgress: progress, env }),
  ]);
  const rootDir = await mkdtemp(join(tmpdir(), "polydev-bench-gvisor-"));
  const driver = new GvisorDriver({ rootDir, toolboxDir: toolbox, cgroupParent: CGROUP_PARENT });
  await driver.probe();
  let serial = 0;
  const spec = (label: string): SandboxSpec => ({
    id: `bench-${label}-${serial++}`,
    limits: { cpu: 1, memoryMb: 256, diskMb: 256, pidsMax: 128 },
    network: "none",
    env: {},
    image: { name: "polydev/base", digest: "sha256:bench", layers: [rootfs], env: { ...BASE_IMAGE_ENV } },
  });
  const handles: SandboxHandle[] = [];
  try {
    // One sandbox lends its bundle to the raw runs: the same root, mounts, limits and flags.
    const lender = await createToFirstOutput(driver, spec("lender"));
    handles.push(lender);
    const config = JSON.parse(
      await readFile(join(rootDir, "sandboxes", lender.sandboxId, "bundle", "config.json"), "utf8"),
    ) as { process: { args: string[] }; linux: { cgroupsPath: string } };
    const rawBundle = join(rootDir, "raw-bundle");
    const rawState = join(rootDir, "raw-state");
    await mkdir(rawBundle, { recursive: true });
    await mkdir(rawState, { recursive: true });

    const raw: number[] = [];
    const viaDriver: number[] = [];
    const warmClaims: number[] = [];
    // Interleaved, so load from other jobs falls on both alike.
    for (let round = 0; round < rounds; round += 1) {
      const rawId = `raw-${round}`;
      config.process.args = ["/bin/echo", "first"];
      config.linux.cgroupsPath = `/${CGROUP_PARENT}/${rawId}`;
      await writeFile(join(rawBundle, "config.json"), JSON.stringify(config));
      raw.push(await rawRunToFirstByte(rawState, rawBundle, rawId));
      spawn(RUNSC, [`--root=${rawState}`, "delete", "--force", rawId], { stdio: "ignore" });

      const timed = await timeIt(() => createToFirstOutput(driver, spec("create")));
      viaDriver.push(timed.ms);
      await driver.destroy(timed.value);

      const spare = await driver.create(spec("spare"));
      // A pool's spare has waited: nothing of its create is left to reuse.
      await (await driver.connect(spare)).close();
      const claimed = await timeIt(async () => {
        const handle = await (driver.adopt?.(spare, {
          ...spec("claim"),
          id: spare.sandboxId,
          env: { CLAIMED: "1" },
        }) ?? Promise.reject(new Error("the gvisor driver has no adopt")));
        await connectToFirstOutput(driver, handle);
      });
      warmClaims.push(claimed.ms);
      await driver.destroy(spare);
      progress(
        `round ${round + 1}/${rounds}: raw ${fmt(raw.at(-1) ?? Number.NaN)} ms, driver ${fmt(timed.ms)} ms, warm claim ${fmt(claimed.ms)} ms`,
      );
    }

    // Idle sandboxes: created, connected once, then left alone.
    const idle: SandboxHandle[] = [];
    for (let i = 0; i < 3; i += 1) idle.push(await createToFirstOutput(driver, spec("idle")));
    handles.push(...idle);
    const idleMemoryBytes = await Promise.all(idle.map((handle) => cgroupPss(handle.sandboxId)));

    progress(`${concurrentCount} concurrent creates`);
    const concurrent = await concurrentCreates(driver, concurrentCount, () => spec("many"));
    return {
      raw: summarize(raw),
      driver: summarize(viaDriver),
      warmClaim: summarize(warmClaims),
      idleMemoryBytes,
      concurrent,
    };
  } finally {
    for (const sandbox of await driver.list()) await driver.destroy(sandbox.handle).catch(() => undefined);
    await rm(rootDir, { recursive: true, force: true });
    // runsc removes each sandbox's cgroup, not the parent named here.
    for (const hierarchy of await readdir("/sys/fs/cgroup").catch(() => [] as string[])) {
      await rmdir(join("/sys/fs/cgroup", hierarchy, CGROUP_PARENT)).catch(() => undefined);
    }
  }
}

export function gvisorTable(result: GvisorBench | string): string {
  if (typeof result === "string") return result;
  const ratio = result.driver.p50 / result.raw.p50;
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
  return [
    "| figure | p50 ms | p95 ms | n | vs raw | budget |",
    "|---|---|---|---|---|---|",
    `| raw \`runsc run\` of the same bundle → first output | ${fmt(result.raw.p50)} | ${fmt(result.raw.p95)} | ${result.raw.n} | 1.00× | baseline |`,
    `| driver create → first exec output | ${fmt(result.driver.p50)} | ${fmt(result.driver.p95)} | ${result.driver.n} | ${ratio.toFixed(2)}× | ≤ 1.3× |`,
    `| warm pool claim (adopt) → first exec output | ${fmt(result.warmClaim.p50)} | ${fmt(result.warmClaim.p95)} | ${result.warmClaim.n} | ${(result.warmClaim.p50 / result.raw.p50).toFixed(2)}× | report |`,
    "",
    `Host memory per idle sandbox (PSS of its host cgroup's processes): ${result.idleMemoryBytes.map(mib).join(", ")} MiB`,
    "",
    concurrentLine(result.concurrent),
  ].join("\n");
}
