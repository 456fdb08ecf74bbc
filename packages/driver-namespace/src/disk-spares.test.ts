/**
 * Spare disks over a plain directory: the pool's own limits are not what is tested here, only
 * which disks the spares make, hand out and remove.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DiskSpares } from "./disk-spares.js";
import type { DiskStorage } from "./image-launch.js";
import { plainDiskStorage } from "./testing/plain-disk-storage.js";

const MiB = 1024 * 1024;

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "polydev-spares-"));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** The spare disks on disk now (relative paths). */
function spareDirs(): string[] {
  const dir = join(root, "disks");
  return existsSync(dir) ? readdirSync(dir).map((name) => `disks/${name}`) : [];
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("spare disks", () => {
  it("hands out spares of the size asked for, and never removes one it handed out while it replaces spares of another size", async () => {
    const plain = plainDiskStorage(root);
    let removing = 0;
    let releaseRemovals: () => void = () => {};
    const removalsHeld = new Promise<void>((resolve) => {
      releaseRemovals = resolve;
    });
    const removed: string[] = [];
    // Removals wait until the test lets them go: the window in which a create takes a spare.
    const storage: DiskStorage = {
      ...plain,
      async removeDir(rel) {
        removing += 1;
        await removalsHeld;
        removed.push(rel);
        await plain.removeDir(rel);
      },
    };
    const errors: unknown[] = [];
    const spares = new DiskSpares(storage, (error) => errors.push(error));
    expect(spares.take(64 * MiB)).toBeUndefined();
    await until(() => spareDirs().length === 2, "two spares of 64 MiB");
    const small = spareDirs();
    // Creates now ask for another size: the 64 MiB spares are replaced once the driver is quiet.
    expect(spares.take(128 * MiB)).toBeUndefined();
    await until(() => removing > 0, "the refill to start removing the 64 MiB spares");
    // A create of the old size comes in while the refill is removing: whatever it gets is its own.
    const taken = spares.take(64 * MiB);
    releaseRemovals();
    await until(() => removed.length === 2, "both 64 MiB spares to be removed");
    expect(removed.sort()).toEqual(small.sort());
    // Taken after the refill let go of them: none of those two (they are gone), nothing removed.
    expect(taken === undefined || (!removed.includes(taken) && existsSync(join(root, taken)))).toBe(true);
    expect(errors).toEqual([]);
  });

  it("at start-up removes the spares a previous run left and keeps those a sandbox took", async () => {
    const storage = plainDiskStorage(root);
    const first = new DiskSpares(storage, () => undefined);
    first.take(32 * MiB);
    await until(() => spareDirs().length === 2, "two spares");
    const taken = first.take(32 * MiB);
    expect(taken).toBeDefined();
    const left = spareDirs().filter((rel) => rel !== taken);
    expect(left).toHaveLength(1);
    const next = new DiskSpares(storage, () => undefined);
    await next.sweep(new Set([taken as string]));
    expect(existsSync(join(root, taken as string))).toBe(true);
    for (const rel of left) expect(existsSync(join(root, rel))).toBe(false);
  });
});
