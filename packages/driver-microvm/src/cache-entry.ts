/**
 * One entry of the driver's host cache (/var/cache/polydev/microvm by default), keyed by its
 * inputs: built once into a private directory and renamed into place, so concurrent builders
 * (test files, servers) never see half an entry; the loser's copy is removed.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, rename, rm, stat, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";

/** Builds in flight in this process, so concurrent callers share one. */
const building = new Map<string, Promise<string>>();

/** A directory of the cache that is being built (or was left by a builder that died). */
export const PARTIAL_MARK = ".partial-";

/**
 * The entry's path, built first if it is missing. Each use stamps the entry's mtime: the cache's
 * pruning (cache-pruning.ts) removes the entries used least recently, and may remove one between
 * two uses, so nothing here remembers that an entry exists.
 */
export function ensureCacheEntry(
  cacheDir: string,
  name: string,
  build: (partialDir: string) => Promise<void>,
): Promise<string> {
  const entry = join(cacheDir, name);
  const existing = building.get(entry);
  if (existing !== undefined) return existing;
  if (existsSync(entry)) return stamped(entry);
  const made = (async () => {
    await mkdir(cacheDir, { recursive: true, mode: 0o755 });
    await ensureTraversable(cacheDir);
    const partial = `${entry}${PARTIAL_MARK}${randomBytes(4).toString("hex")}`;
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
    () => building.delete(entry),
    () => building.delete(entry),
  );
  return made;
}

/** Marks the entry as just used; an entry removed meanwhile is the caller's error to meet. */
async function stamped(entry: string): Promise<string> {
  const now = new Date();
  await utimes(entry, now, now).catch(() => undefined);
  return entry;
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
