/**
 * Storage pool benchmark: what a sandbox disk costs to create, fork (clone) and remove, on a
 * real loop-mounted pool in a temporary directory. The clone source holds 1 GiB of written data;
 * its baseline, measured once in the same run, is a byte copy of that data on the same pool
 * (what fork would cost without reflinks). Needs root (loop devices and mounts).
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoragePool } from "@polydev/images";
import type { Summary } from "./stats.js";
import { fmt, summarize, timeIt } from "./stats.js";

export interface StoragePoolBench {
  create: Summary;
  clone1GiB: Summary;
  remove: Summary;
  byteCopy1GiBMs: number;
}

const GiB = 1024 ** 3;

export async function benchStoragePool(options: { quick: boolean }): Promise<StoragePoolBench | string> {
  if (process.getuid?.() !== 0) return "skipped: the storage pool needs root (loop devices and mounts)";
  const rounds = options.quick ? 5 : 20;
  const work = await mkdtemp(join(tmpdir(), "polydev-bench-pool-"));
  const pool = new StoragePool({
    mountPoint: join(work, "pool"),
    imageFile: join(work, "pool.xfs"),
    sizeBytes: 16 * GiB,
  });
  try {
    await pool.open();
    const creates: number[] = [];
    const removes: number[] = [];
    // The first create of a size makes its template; later ones are what a sandbox pays.
    await pool.createDir("disks/warmup", 2 * GiB);
    for (let round = 0; round < rounds; round++) {
      creates.push((await timeIt(() => pool.createDir(`disks/new-${round}`, 2 * GiB))).ms);
    }
    const source = await pool.createDir("disks/source", 2 * GiB);
    const written = spawnSync("dd", [
      "if=/dev/zero",
      `of=${join(source, "data")}`,
      "bs=1M",
      "count=1024",
      "conv=fsync",
    ]);
    if (written.status !== 0) throw new Error(`writing 1 GiB failed: ${written.stderr}`);
    const clones: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // A little new data before each fork, as a working sandbox would have.
      spawnSync("dd", ["if=/dev/zero", `of=${join(source, `note-${round}`)}`, "bs=4k", "count=16"]);
      clones.push((await timeIt(() => pool.cloneDir("disks/source", `disks/fork-${round}`, null))).ms);
    }
    const byteCopy = await timeIt(async () => {
      const copied = spawnSync("cp", [
        "--reflink=never",
        join(source, "data"),
        join(pool.root, "disks/warmup/copy"),
      ]);
      spawnSync("sync", ["-f", join(pool.root, "disks/warmup")]);
      if (copied.status !== 0) throw new Error(`byte copy failed: ${copied.stderr}`);
    });
    for (let round = 0; round < rounds; round++) {
      removes.push((await timeIt(() => pool.removeDir(`disks/fork-${round}`))).ms);
    }
    return {
      create: summarize(creates),
      clone1GiB: summarize(clones),
      remove: summarize(removes),
      byteCopy1GiBMs: byteCopy.ms,
    };
  } finally {
    await pool.close();
    await rm(work, { recursive: true, force: true });
  }
}

export function storagePoolTable(result: StoragePoolBench | string): string {
  if (typeof result === "string") return result;
  const ratio = (result.clone1GiB.p50 / result.byteCopy1GiBMs).toFixed(3);
  return [
    "| figure | p50 ms | p95 ms | n | budget |",
    "|---|---|---|---|---|",
    `| create a 2 GiB disk | ${fmt(result.create.p50)} | ${fmt(result.create.p95)} | ${result.create.n} | |`,
    `| clone (fork/snapshot) a disk holding 1 GiB | ${fmt(result.clone1GiB.p50)} | ${fmt(result.clone1GiB.p95)} | ${result.clone1GiB.n} | fork ≤ 150, snapshot ≤ 200 |`,
    `| baseline: byte copy of the same 1 GiB | ${fmt(result.byteCopy1GiBMs)} | | 1 | clone/copy = ${ratio} |`,
    `| remove a disk | ${fmt(result.remove.p50)} | ${fmt(result.remove.p95)} | ${result.remove.n} | |`,
  ].join("\n");
}
