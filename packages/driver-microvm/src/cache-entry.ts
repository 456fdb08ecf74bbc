/**
 * One entry of the driver's host cache (/var/cache/polydev/microvm by default), keyed by its
 * inputs: built once into a private directory and renamed into place, so concurrent builders
 * (test files, servers) never see half an entry; the loser's copy is removed.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";

const building = new Map<string, Promise<string>>();

export function ensureCacheEntry(
  cacheDir: string,
  name: string,
  build: (partialDir: string) => Promise<void>,
): Promise<string> {
  const entry = join(cacheDir, name);
  const existing = building.get(entry);
  if (existing !== undefined) return existing;
  const made = (async () => {
    if (existsSync(entry)) return entry;
    await mkdir(cacheDir, { recursive: true, mode: 0o755 });
    await ensureTraversable(cacheDir);
    const partial = `${entry}.partial-${randomBytes(4).toString("hex")}`;
    try {
      await mkdir(partial, { mode: 0o755 });
      await build(partial);
      await rename(partial, entry).catch((error: NodeJS.ErrnoException) => {
        if (!existsSync(entry)) throw error;
      });
    } finally {
      await rm(partial, { recursive: true, force: true });
    }
    return entry;
  })();
  building.set(entry, made);
  made.then(
    () => undefined,
    () => building.delete(entry),
  );
  return made;
}

/**
 * QEMU runs as an unprivileged uid and opens kernels and disks here by path, so every directory
 * above the cache must let others pass (x, never r): /var/cache/polydev is made 0700 by the
 * image store. What lies in its other subdirectories keeps their own modes.
 */
export async function ensureTraversable(dir: string): Promise<void> {
  for (let current = dir; ; current = dirname(current)) {
    const info = await stat(current);
    if ((info.mode & 0o001) === 0) await chmod(current, (info.mode & 0o7777) | 0o001);
    if (current === dirname(current)) return;
  }
}
