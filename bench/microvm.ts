/**
 * The microvm driver against raw QEMU, in one run (`npm run bench -- --only microvm`):
 * - raw: QEMU started waiting for a state, the image's boot snapshot streamed in, `cont`, to the
 *   first reply of the guest's agent (same VM shape, disks and flags as the driver's sandboxes);
 * - driver: create (snapshot restore + activation) → connect → exec `echo` → first stdout byte;
 * - hibernate → resume → first exec output (the resume and the exec, timed from the resume);
 * - fork 1→N of a running sandbox: from the call to every fork's first exec output (one pause
 *   and save of the source, N restores of that state);
 * - host memory per idle sandbox (its QEMU's PSS and its host cgroup's usage), created and forked;
 * - 20 concurrent creates (the issue's figure), each to its first exec output: failures, total.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxHandle, SandboxSpec } from "@polydev/core";
import { MicrovmDriver, QemuVmm } from "@polydev/driver-microvm";
import { rawRestoreToFirstReply } from "@polydev/driver-microvm/testing";
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

export interface MicrovmBench {
  raw: Summary;
  driver: Summary;
  resume: Summary;
  hibernate: Summary;
  idle: { pssBytes: number; cgroupBytes: number }[];
  /** fork(source, N specs) → every fork's first exec output. */
  fork: { count: number; summary: Summary };
  idleForks: { pssBytes: number; cgroupBytes: number }[];
  concurrent: ConcurrentCreates;
}

const CGROUP_PARENT = `polydev-microvm-bench-${process.pid}`;
const IMAGE_CACHE_DIR = "/var/cache/polydev/images";
const MICROVM_CACHE_DIR = "/var/cache/polydev/microvm";

function progress(line: string): void {
  process.stderr.write(`bench microvm: ${line}\n`);
}

async function qemuPss(rootDir: string, sandboxId: string): Promise<number> {
  const meta = JSON.parse(await readFile(join(rootDir, "sandboxes", sandboxId, "meta.json"), "utf8")) as {
    pid: number;
  };
  const rollup = await readFile(`/proc/${meta.pid}/smaps_rollup`, "utf8").catch(() => "");
  return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024;
}

export async function benchMicrovm({ quick }: { quick: boolean }): Promise<MicrovmBench | string> {
  if (process.getuid?.() !== 0) return "skipped: needs root";
  const rounds = quick ? 3 : 10;
  // The issue's figure: 20 at once, whatever the run's length.
  const concurrentCount = 20;
  const forkCount = 4;
  const env = buildEnvironmentFrom(process.env);
  const [rootfs, toolbox] = await Promise.all([
    ensureBaseRootfs(IMAGE_CACHE_DIR, { onProgress: progress, env }),
    ensureToolbox(IMAGE_CACHE_DIR, { onProgress: progress, env }),
  ]);
  const rootDir = await mkdtemp(join(tmpdir(), "polydev-bench-microvm-"));
  const driver = new MicrovmDriver({ rootDir, toolboxDir: toolbox, cgroupParent: CGROUP_PARENT });
  const unavailable = await driver.probe().then(
    () => undefined,
    (error: unknown) => String(error),
  );
  if (unavailable !== undefined) return `skipped: ${unavailable}`;
  let serial = 0;
  const spec = (label: string): SandboxSpec => ({
    id: `bench-${label}-${serial++}`,
    limits: { cpu: 1, memoryMb: 256, diskMb: 256, pidsMax: 128 },
    network: "none",
    env: {},
    image: { name: "polydev/base", digest: "sha256:bench", layers: [rootfs], env: { ...BASE_IMAGE_ENV } },
  });
  try {
    // The lender boots the boot snapshot if this host has none yet, and names the VM shape.
    const lender = await createToFirstOutput(driver, spec("lender"));
    const raw: number[] = [];
    const viaDriver: number[] = [];
    // Interleaved, so load from other jobs falls on both alike.
    for (let round = 0; round < rounds; round += 1) {
      raw.push(
        await rawRestoreToFirstReply({
          rootDir,
          cacheDir: MICROVM_CACHE_DIR,
          lenderId: lender.sandboxId,
          vmm: new QemuVmm({ accel: "tcg" }),
          label: `raw-${round}`,
        }),
      );
      const timed = await timeIt(() => createToFirstOutput(driver, spec("create")));
      viaDriver.push(timed.ms);
      await driver.destroy(timed.value);
      progress(
        `round ${round + 1}/${rounds}: raw ${fmt(raw.at(-1) ?? Number.NaN)} ms, driver ${fmt(timed.ms)} ms`,
      );
    }

    const hibernate: number[] = [];
    const resume: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      hibernate.push((await timeIt(() => driver.hibernate(lender))).ms);
      const timed = await timeIt(async () => {
        await driver.resume(lender);
        await connectToFirstOutput(driver, lender);
      });
      resume.push(timed.ms);
      progress(
        `hibernate ${round + 1}/${rounds}: ${fmt(hibernate.at(-1) ?? Number.NaN)} ms, resume → exec ${fmt(timed.ms)} ms`,
      );
    }

    const idleHandles: SandboxHandle[] = [];
    for (let i = 0; i < 3; i += 1) idleHandles.push(await createToFirstOutput(driver, spec("idle")));
    const idle = await Promise.all(
      idleHandles.map(async (handle) => ({
        pssBytes: await qemuPss(rootDir, handle.sandboxId),
        cgroupBytes: await driver.hostMemoryBytes(handle),
      })),
    );
    for (const handle of idleHandles) await driver.destroy(handle);

    const forkMs: number[] = [];
    let idleForks: { pssBytes: number; cgroupBytes: number }[] = [];
    for (let round = 0; round < Math.max(2, Math.ceil(rounds / 2)); round += 1) {
      const specs = Array.from({ length: forkCount }, () => spec("fork"));
      const timed = await timeIt(async () => {
        const forks = await driver.fork(lender, specs);
        await Promise.all(forks.map((fork) => connectToFirstOutput(driver, fork)));
        return forks;
      });
      forkMs.push(timed.ms);
      idleForks = await Promise.all(
        timed.value.map(async (handle) => ({
          pssBytes: await qemuPss(rootDir, handle.sandboxId),
          cgroupBytes: await driver.hostMemoryBytes(handle),
        })),
      );
      for (const handle of timed.value) await driver.destroy(handle);
      progress(`fork 1→${forkCount} ${round + 1}: ${fmt(timed.ms)} ms`);
    }

    progress(`${concurrentCount} concurrent creates`);
    const concurrent = await concurrentCreates(driver, concurrentCount, () => spec("many"));
    return {
      raw: summarize(raw),
      driver: summarize(viaDriver),
      hibernate: summarize(hibernate),
      resume: summarize(resume),
      idle,
      fork: { count: forkCount, summary: summarize(forkMs) },
      idleForks,
      concurrent,
    };
  } finally {
    for (const sandbox of await driver.list()) await driver.destroy(sandbox.handle).catch(() => undefined);
    await rm(rootDir, { recursive: true, force: true });
    const { rmdir } = await import("node:fs/promises");
    for (const hierarchy of ["", "memory", "pids", "cpu"]) {
      await rmdir(join("/sys/fs/cgroup", hierarchy, CGROUP_PARENT)).catch(() => undefined);
    }
  }
}

export function microvmTable(result: MicrovmBench | string): string {
  if (typeof result === "string") return result;
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
  const row = (name: string, summary: Summary, budget: string): string =>
    `| ${name} | ${fmt(summary.p50)} | ${fmt(summary.p95)} | ${summary.n} | ${(summary.p50 / result.raw.p50).toFixed(2)}× | ${budget} |`;
  return [
    "| figure | p50 ms | p95 ms | n | vs raw | budget |",
    "|---|---|---|---|---|---|",
    row("raw QEMU restore of the boot snapshot → first agent reply", result.raw, "baseline"),
    row("driver create (snapshot restore) → first exec output", result.driver, "≤ 1.5×"),
    row("resume of a hibernated sandbox → first exec output", result.resume, "≤ 1.5×"),
    row("hibernate (save with memory, VM ended)", result.hibernate, "report"),
    row(
      `fork 1→${result.fork.count} of a running sandbox → every fork's first exec output`,
      result.fork.summary,
      "report",
    ),
    "",
    `Host memory per idle sandbox (QEMU PSS / host cgroup usage): ${result.idle
      .map((entry) => `${mib(entry.pssBytes)} / ${mib(entry.cgroupBytes)} MiB`)
      .join(", ")}`,
    `Host memory per idle fork (QEMU PSS / host cgroup usage): ${result.idleForks
      .map((entry) => `${mib(entry.pssBytes)} / ${mib(entry.cgroupBytes)} MiB`)
      .join(", ")}`,
    "",
    concurrentLine(result.concurrent),
  ].join("\n");
}
