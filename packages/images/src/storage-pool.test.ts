import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  link,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  stat,
  statfs,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPolydevError } from "@polydev/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoragePool } from "./storage-pool.js";

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;
const hasTools = ["/usr/sbin/mkfs.xfs", "/usr/sbin/mkfs.ext4", "/usr/bin/setfattr"].every((tool) =>
  existsSync(tool),
);
/** Loop devices, mounts, foreign owners and device nodes all need root. */
const SKIP = !isRoot
  ? " (skipped: needs root to loop-mount file systems)"
  : !hasTools
    ? " (skipped: needs xfsprogs, e2fsprogs and attr installed; scripts/test.sh installs them)"
    : "";

let work: string;
let pool: StoragePool;

function newPool(): StoragePool {
  return new StoragePool({
    mountPoint: join(work, "pool"),
    imageFile: join(work, "pool.xfs"),
    sizeBytes: 6 * 1024 * MiB,
  });
}

function mountOf(path: string): { fsType: string; options: string } | undefined {
  const lines = execFileSync("cat", ["/proc/self/mountinfo"], { encoding: "utf8" }).split("\n");
  for (const line of lines) {
    const [left, right] = line.split(" - ");
    if (left?.split(" ")[4] === path && right !== undefined) {
      const [fsType, , superOptions] = right.split(" ");
      return { fsType: fsType ?? "", options: `${left.split(" ")[5]},${superOptions}` };
    }
  }
  return undefined;
}

function readMountinfo(pid: number | undefined): string {
  return execFileSync("cat", [`/proc/${pid}/mountinfo`], { encoding: "utf8" });
}

/** The block device a mount point is mounted from. */
function loopOf(path: string): string | undefined {
  for (const line of readMountinfo(process.pid).split("\n")) {
    const [left, right] = line.split(" - ");
    if (left?.split(" ")[4] === path) return right?.split(" ")[1];
  }
  return undefined;
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 100 && !condition(); attempt++) {
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 50));
  }
  expect(condition()).toBe(true);
}

/** Fills a file with zeros from another process until it stops; returns its exit status and stderr. */
function fill(path: string, maxMiB: number): { status: number | null; stderr: string } {
  const result = spawnSync("dd", ["if=/dev/zero", `of=${path}`, "bs=1M", `count=${maxMiB}`, "conv=fsync"], {
    encoding: "utf8",
  });
  return { status: result.status, stderr: result.stderr };
}

/** CAP_SYS_RESOURCE (bit 24) in this process's effective set: ext4 resizes mounted file systems only with it. */
function hasSysResource(): boolean {
  const line = execFileSync("cat", ["/proc/self/status"], { encoding: "utf8" })
    .split("\n")
    .find((entry) => entry.startsWith("CapEff:"));
  return ((BigInt(`0x${line?.split(/\s+/)[1] ?? "0"}`) >> 24n) & 1n) === 1n;
}

function xattr(path: string, name: string): string {
  return execFileSync("getfattr", ["-h", "--only-values", "-n", name, "--", path], { encoding: "utf8" });
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isPolydevError(error) ? error.code : error).toBe(code);
}

/** A tree with everything an overlay upper dir or an image layer holds. */
async function makeRichTree(dir: string): Promise<void> {
  await mkdir(join(dir, "upper/etc"), { recursive: true });
  await writeFile(join(dir, "upper/etc/owned"), "by 1234");
  execFileSync("chown", ["1234:1234", join(dir, "upper/etc/owned")]);
  await writeFile(join(dir, "upper/sudo"), "#!/bin/sh\n");
  execFileSync("chmod", ["4755", join(dir, "upper/sudo")]);
  execFileSync("setfattr", ["-n", "user.overlay.opaque", "-v", "y", join(dir, "upper/etc")]);
  execFileSync("setfattr", ["-n", "trusted.overlay.opaque", "-v", "y", join(dir, "upper/etc")]);
  execFileSync("mknod", [join(dir, "upper/gone"), "c", "0", "0"]);
  await link(join(dir, "upper/etc/owned"), join(dir, "upper/hardlink"));
  await symlink("etc/owned", join(dir, "upper/symlink"));
  // A sparse file: 1 MiB of data at 100 MiB.
  execFileSync("dd", ["if=/dev/zero", `of=${join(dir, "upper/sparse")}`, "bs=1M", "count=1", "seek=100"], {
    stdio: "ignore",
  });
}

async function expectRichTree(dir: string): Promise<void> {
  const owned = await lstat(join(dir, "upper/etc/owned"));
  expect([owned.uid, owned.gid]).toEqual([1234, 1234]);
  expect((await lstat(join(dir, "upper/sudo"))).mode & 0o7777).toBe(0o4755);
  expect(xattr(join(dir, "upper/etc"), "user.overlay.opaque")).toBe("y");
  expect(xattr(join(dir, "upper/etc"), "trusted.overlay.opaque")).toBe("y");
  const whiteout = await lstat(join(dir, "upper/gone"));
  expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true);
  expect((await lstat(join(dir, "upper/hardlink"))).ino).toBe(owned.ino);
  expect(owned.nlink).toBe(2);
  expect(await readlink(join(dir, "upper/symlink"))).toBe("etc/owned");
  const sparse = await lstat(join(dir, "upper/sparse"));
  expect(sparse.size).toBe(101 * MiB);
  expect(sparse.blocks * 512).toBeLessThan(4 * MiB);
}

describe.skipIf(SKIP !== "")(`storage pool on a loop-mounted file system${SKIP}`, () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "polydev-pool-"));
    pool = newPool();
    await pool.open();
  });

  afterAll(async () => {
    await pool?.close().catch(() => undefined);
    // Never remove through a pool that is still mounted: that would delete inside it.
    if (mountOf(join(work, "pool")) === undefined) await rm(work, { recursive: true, force: true });
  });

  it("opens idempotently: a second open reuses the mount of the same XFS file, which makes reflinks", async () => {
    await pool.open();
    await newPool().open();
    const mount = mountOf(pool.root);
    expect(mount?.fsType).toBe("xfs");
    expect(mount?.options).toContain("nosuid");
    expect(execFileSync("xfs_info", [pool.root], { encoding: "utf8" })).toMatch(/reflink=1/);
    // The image file is sparse: only what is used takes host space.
    const file = await stat(join(work, "pool.xfs"));
    expect(file.size).toBe(6 * 1024 * MiB);
    expect(file.blocks * 512).toBeLessThan(file.size / 4);
  });

  it("refuses paths that are not plain relative paths in its alphabet", async () => {
    for (const bad of ["../x", "/abs", "a/../b", "a//b", "Disks/x", "a b", ".volumes/x", "x/.tmp", ""]) {
      await expectCode(pool.createDir(bad, null), "invalid_request");
    }
    await expectCode(pool.createDir("disks/tiny", 1024), "invalid_request");
  });

  it("limits a directory exactly: a writer past it gets ENOSPC and the bytes stop at the limit", async () => {
    const dir = await pool.createDir("disks/limited", 64 * MiB);
    expect(dir).toBe(join(pool.root, "disks/limited"));
    expect((await stat(join(pool.root, "disks"))).mode & 0o777).toBe(0o700);
    expect(mountOf(dir)?.options).toContain("nosuid");
    expect(await pool.limit("disks/limited")).toBe(64 * MiB);

    const result = fill(join(dir, "big"), 200);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("No space left on device");
    const written = (await stat(join(dir, "big"))).size;
    expect(written).toBeLessThanOrEqual(64 * MiB);
    expect(written).toBeGreaterThan(48 * MiB);
    const usage = await pool.usage("disks/limited");
    expect(usage.bytes).toBeLessThanOrEqual(64 * MiB);
    expect(usage.bytes).toBeGreaterThanOrEqual(written);
    expect(usage.inodes).toBeGreaterThan(0);
    // Inodes are limited in proportion too: 64 MiB / 8 KiB.
    expect((await statfs(dir)).files).toBe(8192);
  });

  it("grows a limit (online, or offline where the host lacks CAP_SYS_RESOURCE), and refuses to shrink below usage", async () => {
    const dir = join(pool.root, "disks/limited");
    await expectCode(pool.setLimit("disks/limited", 32 * MiB), "invalid_request");
    await pool.setLimit("disks/limited", 128 * MiB);
    expect(await pool.limit("disks/limited")).toBe(128 * MiB);
    expect((await statfs(dir)).blocks * 4096).toBeGreaterThan(120 * MiB);
    const result = fill(join(dir, "more"), 40);
    expect(result.status).toBe(0);
    expect((await stat(join(dir, "more"))).size).toBe(40 * MiB);
    // The old file is still whole.
    expect((await stat(join(dir, "big"))).size).toBeGreaterThan(48 * MiB);
    await pool.createDir("layers/plain", null);
    await expectCode(pool.setLimit("layers/plain", 64 * MiB), "invalid_request");
  });

  it("clones a disk holding 1 GiB as a copy-on-write copy: the pool's used space does not grow by it", async () => {
    const dir = await pool.createDir("disks/source", 2048 * MiB);
    expect(fill(join(dir, "gigabyte"), 1024).status).toBe(0);
    execFileSync("sync");
    await writeFile(join(dir, "note"), "original");
    const before = await statfs(pool.root);
    const started = performance.now();
    const clone = await pool.cloneDir("disks/source", "disks/fork", null);
    const elapsedMs = performance.now() - started;
    execFileSync("sync");
    const after = await statfs(pool.root);
    const grewBytes = (before.bfree - after.bfree) * after.bsize;
    console.log(
      `clone of a disk holding 1 GiB: ${elapsedMs.toFixed(1)} ms, pool used +${(grewBytes / MiB).toFixed(1)} MiB`,
    );
    expect(grewBytes).toBeLessThan(64 * MiB);
    expect((await stat(join(clone, "gigabyte"))).size).toBe(1024 * MiB);
    expect(await pool.limit("disks/fork")).toBe(2048 * MiB);
    // A write not yet synced inside the source is in the clone (the pool syncs before it clones).
    expect(await readFile(join(clone, "note"), "utf8")).toBe("original");
    // The copies are independent.
    await writeFile(join(clone, "note"), "changed in the fork");
    expect(await readFile(join(dir, "note"), "utf8")).toBe("original");
    // A larger limit for the clone is applied; a smaller one is refused.
    const bigger = await pool.cloneDir("disks/source", "disks/bigger-fork", 3072 * MiB);
    expect((await statfs(bigger)).blocks * 4096).toBeGreaterThan(2900 * MiB);
    await expectCode(pool.cloneDir("disks/source", "disks/smaller", 1024 * MiB), "invalid_request");
    await expectCode(pool.cloneDir("disks/source", "disks/fork", null), "conflict");
  });

  it("a disk's clone keeps owners, setuid, overlay xattrs, whiteouts, hard links, symlinks and holes", async () => {
    const dir = await pool.createDir("disks/rich", 256 * MiB);
    await makeRichTree(dir);
    const clone = await pool.cloneDir("disks/rich", "snapshots/rich", null);
    await expectRichTree(clone);
  });

  it("a plain directory's clone (an image layer) is a reflink copy keeping the same", async () => {
    const dir = await pool.createDir("layers/rich", null);
    await makeRichTree(dir);
    expect(fill(join(dir, "data"), 64).status).toBe(0);
    const clone = await pool.cloneDir("layers/rich", "layers/rich-copy", null);
    await expectRichTree(clone);
    // Shared extents: filefrag reports the copy's data extents as shared.
    expect(execFileSync("filefrag", ["-v", join(clone, "data")], { encoding: "utf8" })).toContain("shared");
    const usage = await pool.usage("layers/rich-copy");
    expect(usage.bytes).toBeGreaterThanOrEqual(64 * MiB);
    // Files + dirs: upper, etc, owned (= hardlink), sudo, gone, symlink, sparse, data, and the root.
    expect(usage.inodes).toBe(9);
    await expectCode(pool.cloneDir("layers/rich", "disks/from-layer", 256 * MiB), "invalid_request");
    await expectCode(pool.cloneDir("layers/missing", "layers/x", null), "not_found");
  });

  it("growing a disk in use elsewhere: online with CAP_SYS_RESOURCE, else a conflict that leaves it intact", async () => {
    const dir = await pool.createDir("disks/busy", 32 * MiB);
    await writeFile(join(dir, "file"), "still here");
    // A second mount of the same file system, as a sandbox's idmapped mount would be.
    const elsewhere = join(work, "elsewhere");
    await mkdir(elsewhere);
    execFileSync("mount", ["--bind", dir, elsewhere]);
    try {
      if (hasSysResource()) {
        await pool.setLimit("disks/busy", 64 * MiB);
        expect(await pool.limit("disks/busy")).toBe(64 * MiB);
      } else {
        await expectCode(pool.setLimit("disks/busy", 64 * MiB), "conflict");
        expect(await pool.limit("disks/busy")).toBe(32 * MiB);
      }
      expect(await readFile(join(pool.root, "disks/busy/file"), "utf8")).toBe("still here");
      expect(mountOf(join(pool.root, "disks/busy"))?.fsType).toBe("ext4");
    } finally {
      execFileSync("umount", [elsewhere]);
    }
    // Unused again: it grows either way.
    await pool.setLimit("disks/busy", 64 * MiB);
    expect((await statfs(join(pool.root, "disks/busy"))).blocks * 4096).toBeGreaterThan(56 * MiB);
    expect(await readFile(join(pool.root, "disks/busy/file"), "utf8")).toBe("still here");
  });

  it("removes directories and volumes, idempotently", async () => {
    await pool.createDir("disks/doomed", 32 * MiB);
    await pool.removeDir("disks/doomed");
    expect(mountOf(join(pool.root, "disks/doomed"))).toBeUndefined();
    expect(existsSync(join(pool.root, "disks/doomed"))).toBe(false);
    await expectCode(pool.limit("disks/doomed"), "not_found");
    await pool.removeDir("layers/rich-copy");
    expect(existsSync(join(pool.root, "layers/rich-copy"))).toBe(false);
    await pool.removeDir("layers/rich-copy");
    // The same path can be made again, with the other kind.
    await pool.createDir("disks/doomed", null);
  });

  it("survives a reboot: everything unmounted, a new pool object opens and finds every disk", async () => {
    await writeFile(join(pool.root, "disks/limited/synced"), "kept");
    await pool.close();
    expect(mountOf(pool.root)).toBeUndefined();
    expect(existsSync(join(pool.root, "disks"))).toBe(false);
    pool = newPool();
    await pool.open();
    expect(await readFile(join(pool.root, "disks/limited/synced"), "utf8")).toBe("kept");
    expect(await pool.limit("disks/limited")).toBe(128 * MiB);
    expect(await readFile(join(pool.root, "disks/source/note"), "utf8")).toBe("original");
    await expectRichTree(join(pool.root, "snapshots/rich"));
    // Still limited after the remount.
    expect(fill(join(pool.root, "disks/limited/again"), 200).stderr).toContain("No space left on device");
  });

  it("a disk still alive in another mount namespace is remounted on its live device, never a second copy", async () => {
    const dir = join(pool.root, "disks/limited");
    const device = mountOf(dir) === undefined ? undefined : loopOf(dir);
    // A process that unshared its mounts while the disk was mounted keeps the file system alive.
    const holder = spawn("unshare", ["--mount", "--propagation", "private", "sleep", "120"], {
      stdio: "ignore",
    });
    try {
      await waitFor(
        () => existsSync(`/proc/${holder.pid}/mountinfo`) && readMountinfo(holder.pid).includes(dir),
      );
      await pool.close();
      expect(mountOf(pool.root)).toBeUndefined();
      pool = newPool();
      await pool.open();
      expect(loopOf(dir)).toBe(device);
      await writeFile(join(dir, "after-remount"), "one file system");
      expect(await readFile(join(dir, "synced"), "utf8")).toBe("kept");
    } finally {
      holder.kill("SIGKILL");
    }
    await new Promise((resolvePromise) => holder.once("exit", resolvePromise));
  });
});
