/**
 * A DiskStorage over a plain directory, for tests of what does not depend on the pool's
 * limits or reflinks (those are the StoragePool's own tests): the same layout, no quotas, and
 * clones by `cp -a --reflink=auto`.
 */
import { spawnSync } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { DiskStorage } from "../image-launch.js";

export function plainDiskStorage(root: string): DiskStorage {
  const path = (rel: string): string => join(root, rel);
  return {
    root,
    async createDir(rel) {
      await mkdir(path(rel), { recursive: true, mode: 0o700 });
      return path(rel);
    },
    async cloneDir(from, to) {
      await mkdir(join(path(to), ".."), { recursive: true, mode: 0o700 });
      const copy = spawnSync("/bin/cp", ["-a", "--reflink=auto", path(from), path(to)], { env: {} });
      if (copy.status !== 0) throw new Error(`cp failed: ${copy.stderr.toString()}`);
      return path(to);
    },
    async setLimit() {},
    async usage(rel) {
      const out = spawnSync("/usr/bin/du", ["-sb", path(rel)], { env: {} }).stdout.toString();
      return { bytes: Number(out.split("\t")[0]) || 0, inodes: 0 };
    },
    async removeDir(rel) {
      await rm(path(rel), { recursive: true, force: true });
    },
  };
}
