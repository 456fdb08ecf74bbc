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
 * Sandboxes of other servers sharing the cache are not in `keep`: each sandbox also marks the
 * entries it needs as held (holdCacheEntries, one file per sandbox naming its directory), and an
 * entry held by a sandbox whose metadata still exists is never removed. A holder whose sandbox
 * is gone is dropped here. That matters most for a hibernated sandbox: its resume opens its disks
 * by path again, and a root, toolbox or empty disk built anew would not be the bytes its guest
 * saw.
 *
 * An entry is renamed out of its name before it is deleted, so a create that looks it up at
 * that moment builds it again instead of finding half of it.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
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
  held: boolean;
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
    entries.push({ name: dirent.name, bytes, usedAt: info.mtimeMs, held: await held(path) });
  }
  let totalBytes = entries.reduce((sum, entry) => sum + entry.bytes, 0);
  entries.sort((a, b) => a.usedAt - b.usedAt);
  for (const entry of entries) {
    const idle = now - entry.usedAt;
    if (options.keep.has(entry.name) || entry.held || idle < options.minIdleMs) continue;
    if (totalBytes <= options.maxBytes && idle < options.maxIdleMs) continue;
    if (!(await removeEntry(cacheDir, entry.name))) continue;
    removed.push(entry.name);
    freedBytes += entry.bytes;
    totalBytes -= entry.bytes;
  }
  return { removed, freedBytes, totalBytes };
}

const HOLDERS = ".holders";

const holderName = (sandboxDir: string): string =>
  createHash("sha256").update(sandboxDir).digest("hex").slice(0, 32);

/** Marks `entries` as needed by the sandbox whose directory is `sandboxDir` (see above). */
export async function holdCacheEntries(
  cacheDir: string,
  sandboxDir: string,
  entries: Iterable<string>,
): Promise<void> {
  const name = holderName(sandboxDir);
  for (const entry of entries) {
    const holders = join(cacheDir, entry, HOLDERS);
    await mkdir(holders, { recursive: true, mode: 0o700 });
    await writeFile(join(holders, name), sandboxDir, { mode: 0o600 });
  }
}

/** The destroyed sandbox's holders, wherever it left them (a pruning would drop them too). */
export async function releaseCacheEntries(cacheDir: string, sandboxDir: string): Promise<void> {
  const name = holderName(sandboxDir);
  for (const entry of await readdir(cacheDir).catch(() => [] as string[])) {
    await rm(join(cacheDir, entry, HOLDERS, name), { force: true });
  }
}

/** Whether a sandbox that still exists holds the entry; drops the holders of gone ones. */
async function held(entryPath: string): Promise<boolean> {
  const holders = join(entryPath, HOLDERS);
  let found = false;
  for (const name of await readdir(holders).catch(() => [] as string[])) {
    const sandboxDir = await readFile(join(holders, name), "utf8").catch(() => "");
    if (sandboxDir.startsWith("/") && existsSync(join(sandboxDir, "meta.json"))) found = true;
    else await rm(join(holders, name), { force: true });
  }
  return found;
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
