/**
 * Keeps the driver's host cache bounded. Its entries are keyed by what users choose (an image
 * each, a boot snapshot per image and VM shape, an empty disk per changes size), so without
 * pruning a user who creates sandboxes from many images or sizes fills the host's disk.
 *
 * Entries are removed least recently used first (each use stamps the entry's mtime, see
 * cache-entry.ts) until the cache fits `maxBytes`; an entry idle longer than `maxIdleMs` goes
 * whatever the size. Never removed: an entry the driver's sandboxes still refer to (`keep`), or
 * one used in the last `minIdleMs`, which also covers other servers and test runs sharing the
 * cache (their sandboxes are not in `keep`, but their use keeps stamping it).
 *
 * An entry is renamed out of its name before it is deleted, so a create that looks it up at
 * that moment builds it again instead of finding half of it.
 */
import { randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { lstat, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { PARTIAL_MARK } from "./cache-entry.js";

const PRUNING_MARK = ".pruning-";
/** A build takes at most the boot timeout (30 minutes at most); one older than this died. */
const ABANDONED_BUILD_MS = 6 * 3_600_000;

export interface CachePruneOptions {
  /** The cache's size (allocated bytes) to stay within. */
  maxBytes: number;
  /** An entry unused this long is removed even if the cache fits. */
  maxIdleMs: number;
  /** An entry used more recently than this is never removed. */
  minIdleMs: number;
  /** Entry names in use by this driver's sandboxes (running or hibernated). */
  keep: ReadonlySet<string>;
  now?: number;
}

export interface CachePruneResult {
  removed: string[];
  freedBytes: number;
  /** What the cache holds afterwards. */
  totalBytes: number;
}

interface Entry {
  name: string;
  bytes: number;
  usedAt: number;
}

export async function pruneCache(cacheDir: string, options: CachePruneOptions): Promise<CachePruneResult> {
  const now = options.now ?? Date.now();
  const listing = await readdir(cacheDir, { withFileTypes: true }).catch(() => [] as Dirent[]);
  const entries: Entry[] = [];
  const removed: string[] = [];
  let freedBytes = 0;
  for (const dirent of listing) {
    if (!dirent.isDirectory()) continue;
    const path = join(cacheDir, dirent.name);
    const info = await lstat(path).catch(() => undefined);
    if (info === undefined) continue;
    const bytes = await allocatedBytes(path);
    const leftOver =
      dirent.name.includes(PRUNING_MARK) ||
      (dirent.name.includes(PARTIAL_MARK) && now - info.mtimeMs > ABANDONED_BUILD_MS);
    if (leftOver) {
      await rm(path, { recursive: true, force: true });
      freedBytes += bytes;
      continue;
    }
    if (dirent.name.includes(PARTIAL_MARK)) continue;
    entries.push({ name: dirent.name, bytes, usedAt: info.mtimeMs });
  }
  let totalBytes = entries.reduce((sum, entry) => sum + entry.bytes, 0);
  entries.sort((a, b) => a.usedAt - b.usedAt);
  for (const entry of entries) {
    const idle = now - entry.usedAt;
    if (options.keep.has(entry.name) || idle < options.minIdleMs) continue;
    if (totalBytes <= options.maxBytes && idle < options.maxIdleMs) continue;
    if (!(await removeEntry(cacheDir, entry.name))) continue;
    removed.push(entry.name);
    freedBytes += entry.bytes;
    totalBytes -= entry.bytes;
  }
  return { removed, freedBytes, totalBytes };
}

async function removeEntry(cacheDir: string, name: string): Promise<boolean> {
  const doomed = join(cacheDir, `${name}${PRUNING_MARK}${randomBytes(4).toString("hex")}`);
  try {
    await rename(join(cacheDir, name), doomed);
  } catch {
    return false; // gone already (another pruner)
  }
  await rm(doomed, { recursive: true, force: true });
  return true;
}

/** Blocks the files below `path` take (sparse RAM files count what they hold, not their size). */
async function allocatedBytes(path: string): Promise<number> {
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined) return 0;
  if (!info.isDirectory()) return info.blocks * 512;
  let total = info.blocks * 512;
  for (const name of await readdir(path).catch(() => [] as string[])) {
    total += await allocatedBytes(join(path, name));
  }
  return total;
}
