/**
 * The host cache stays bounded: entries go least recently used first, never one a sandbox needs
 * or one used lately, and a pruned entry is built again on its next use. The backing chains
 * that tie a sandbox to the cache's empty disks are real qcow2 files made by qemu-img.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { SnapshotShape } from "./boot-snapshot.js";
import { snapshotKey } from "./boot-snapshot.js";
import { ensureCacheEntry } from "./cache-entry.js";
import { holdCacheEntries, pruneCache, releaseCacheEntries } from "./cache-pruning.js";
import { cacheReferences } from "./cache-references.js";
import { qcow2BackingFile, qcow2Chain } from "./qcow2-header.js";

const MiB = 1024 * 1024;
const HOUR = 3_600_000;
/** Real time: ensureCacheEntry stamps entries with the clock. */
const NOW = Date.now();
const hasQemuImg = existsSync("/usr/bin/qemu-img");

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function cacheDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-microvm-cache-test-"));
  dirs.push(dir);
  return dir;
}

/** An entry holding `mib` MiB of real (allocated) bytes, last used `hoursAgo` before NOW. */
async function entry(dir: string, name: string, mib: number, hoursAgo: number): Promise<void> {
  const path = join(dir, name);
  await mkdir(path);
  await writeFile(join(path, "data"), Buffer.alloc(mib * MiB, 1));
  const at = new Date(NOW - hoursAgo * HOUR);
  await utimes(path, at, at);
}

const options = (keep: string[] = []) => ({
  maxBytes: 5 * MiB,
  minIdleMs: HOUR,
  maxIdleMs: 30 * 24 * HOUR,
  keep: new Set(keep),
  now: NOW,
});

describe("microvm host cache pruning", () => {
  it("removes the least recently used entries until the cache fits, sparing what is kept or used lately", async () => {
    const dir = await cacheDir();
    await entry(dir, "snapshot-oldest", 2, 50);
    await entry(dir, "root-kept", 2, 40);
    await entry(dir, "snapshot-older", 2, 30);
    await entry(dir, "snapshot-old", 2, 20);
    await entry(dir, "snapshot-fresh", 2, 0.5);

    const result = await pruneCache(dir, { ...options(["root-kept"]), maxBytes: 7 * MiB });

    expect(result.removed).toEqual(["snapshot-oldest", "snapshot-older"]);
    expect((await readdir(dir)).sort()).toEqual(["root-kept", "snapshot-fresh", "snapshot-old"]);
    expect(result.freedBytes).toBeGreaterThanOrEqual(4 * MiB);
    expect(result.totalBytes).toBeLessThanOrEqual(7 * MiB);
  });

  it("never removes a kept or recently used entry, even when the cache stays too large", async () => {
    const dir = await cacheDir();
    await entry(dir, "root-kept", 4, 100);
    await entry(dir, "snapshot-fresh", 4, 0.1);
    const result = await pruneCache(dir, options(["root-kept"]));
    expect(result.removed).toEqual([]);
    expect(result.totalBytes).toBeGreaterThan(5 * MiB);
  });

  it("removes an entry idle past maxIdleMs whatever the size, and what dead builders and pruners left", async () => {
    const dir = await cacheDir();
    await entry(dir, "empty-8388608", 1, 31 * 24);
    await entry(dir, "empty-16777216", 1, 2);
    await entry(dir, "snapshot-a.partial-0011aabb", 1, 7);
    await entry(dir, "snapshot-b.partial-2233ccdd", 1, 0.1);
    await entry(dir, "snapshot-c.pruning-4455eeff", 1, 0.1);

    const result = await pruneCache(dir, options());

    expect(result.removed).toEqual(["empty-8388608"]);
    expect((await readdir(dir)).sort()).toEqual(["empty-16777216", "snapshot-b.partial-2233ccdd"]);
  });

  it("keeps an entry held by a sandbox that exists (another server's too), and drops holders of gone ones", async () => {
    const dir = await cacheDir();
    const sandboxes = await cacheDir();
    const hibernated = join(sandboxes, "hibernated");
    await mkdir(hibernated);
    await writeFile(join(hibernated, "meta.json"), "{}");
    await entry(dir, "root-held", 4, 100);
    await entry(dir, "empty-held-by-gone", 4, 100);
    await holdCacheEntries(dir, hibernated, ["root-held"]);
    await holdCacheEntries(dir, join(sandboxes, "destroyed"), ["empty-held-by-gone"]);
    const old = new Date(NOW - 100 * HOUR);
    for (const name of ["root-held", "empty-held-by-gone"]) await utimes(join(dir, name), old, old);

    const first = await pruneCache(dir, { ...options(), maxBytes: 0 });
    expect(first.removed).toEqual(["empty-held-by-gone"]);
    expect(await readdir(dir)).toEqual(["root-held"]);

    // Destroyed: its holders go with it, and nothing holds the entry any more.
    await rm(hibernated, { recursive: true });
    await releaseCacheEntries(dir, hibernated);
    expect(await readdir(join(dir, "root-held", ".holders"))).toEqual([]);
    const second = await pruneCache(dir, { ...options(), maxBytes: 0 });
    expect(second.removed).toEqual(["root-held"]);
  });

  it("builds a pruned entry again on its next use, and stamps each use", async () => {
    const dir = await cacheDir();
    let builds = 0;
    const build = async (partial: string): Promise<void> => {
      builds += 1;
      await writeFile(join(partial, "file"), String(builds));
    };
    const path = await ensureCacheEntry(dir, "toolbox-x", build);
    const old = new Date(NOW - 10 * HOUR);
    await utimes(path, old, old);
    expect(await ensureCacheEntry(dir, "toolbox-x", build)).toBe(path);
    expect((await stat(path)).mtimeMs).toBeGreaterThan(old.getTime());
    expect(builds).toBe(1);

    await utimes(path, old, old);
    expect((await pruneCache(dir, { ...options(), maxBytes: 0 })).removed).toEqual(["toolbox-x"]);
    expect(existsSync(path)).toBe(false);
    expect(await ensureCacheEntry(dir, "toolbox-x", build)).toBe(path);
    expect(existsSync(join(path, "file"))).toBe(true);
    expect(builds).toBe(2);
  });

  describe.skipIf(!hasQemuImg)("a sandbox's references (needs qemu-img)", () => {
    it("follow the changes disk's backing chain into the cache, through a fork's frozen layer", async () => {
      const dir = await cacheDir();
      const elsewhere = await cacheDir();
      await mkdir(join(dir, "empty-16777216"));
      const empty = join(dir, "empty-16777216", "empty.ext4");
      execFileSync("qemu-img", ["create", "-q", "-f", "raw", empty, "16M"]);
      const frozen = join(elsewhere, "layer.qcow2");
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", empty, frozen]);
      const top = join(elsewhere, "top.qcow2");
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", frozen, top]);

      expect(await qcow2BackingFile(top)).toBe(frozen);
      expect(await qcow2Chain(top)).toEqual([frozen, empty]);
      expect(await qcow2BackingFile(empty)).toBeUndefined();

      const shape: SnapshotShape = {
        kernel: join(dir, "kernel-k", "vmlinuz"),
        initrd: join(dir, "initramfs-i", "initrd"),
        cmdline: "console=ttyS0",
        rootDisk: join(dir, "root-r", "root.ext4"),
        toolboxDisk: join(dir, "toolbox-t", "toolbox.ext4"),
        emptyDisk: join(dir, "empty-67108864", "empty.ext4"),
        templateDiskBytes: 1024 * MiB,
        memoryMb: 448,
        vcpus: 1,
        accel: "tcg",
      };
      const keep = await cacheReferences(dir, [{ shape, top }]);
      expect([...keep].sort()).toEqual(
        [
          "empty-16777216",
          "empty-67108864",
          "initramfs-i",
          "kernel-k",
          "root-r",
          `snapshot-${snapshotKey(shape)}`,
          "toolbox-t",
        ].sort(),
      );
    });

    it("ignore a header that names no file or lies about where its name is", async () => {
      const dir = await cacheDir();
      const file = join(dir, "bad.qcow2");
      const header = Buffer.alloc(64);
      header.writeUInt32BE(0x514649fb, 0);
      header.writeUInt32BE(3, 4);
      header.writeBigUInt64BE(2n ** 62n, 8);
      header.writeUInt32BE(20, 16);
      await writeFile(file, header);
      expect(await qcow2BackingFile(file)).toBeUndefined();
      header.writeBigUInt64BE(60n, 8);
      await writeFile(file, header);
      expect(await qcow2BackingFile(file)).toBeUndefined();
      await writeFile(file, "not a qcow2 at all");
      expect(await qcow2Chain(file)).toEqual([]);
    });
  });
});
