/**
 * The host cache entries the driver's sandboxes still need (cache-pruning.ts keeps them): for
 * each sandbox, running or hibernated, the files its VM shape names (kernel, initramfs, the
 * image's root disk, the toolbox), its boot snapshot, and the empty disk at the bottom of its
 * changes disk's backing chain (forks included, whose chains pass through frozen layers).
 */
import { relative, sep } from "node:path";
import type { SnapshotShape } from "./boot-snapshot.js";
import { snapshotKey } from "./boot-snapshot.js";
import { qcow2Chain } from "./qcow2-header.js";

export interface CachedSandbox {
  shape: SnapshotShape;
  /** The changes disk QEMU writes (its backing chain leads into the cache). */
  top: string;
}

/** The cache entry `path` lies in, or undefined when it is not in the cache. */
export function cacheEntryOf(cacheDir: string, path: string): string | undefined {
  const inside = relative(cacheDir, path);
  if (inside === "" || inside.startsWith("..") || inside.startsWith(sep)) return undefined;
  return inside.split(sep)[0];
}

export async function cacheReferences(
  cacheDir: string,
  sandboxes: readonly CachedSandbox[],
): Promise<Set<string>> {
  const keep = new Set<string>();
  const add = (path: string): void => {
    const entry = cacheEntryOf(cacheDir, path);
    if (entry !== undefined) keep.add(entry);
  };
  for (const { shape, top } of sandboxes) {
    for (const path of [shape.kernel, shape.initrd, shape.rootDisk, shape.toolboxDisk, shape.emptyDisk])
      add(path);
    keep.add(`snapshot-${snapshotKey(shape)}`);
    for (const path of await qcow2Chain(top)) add(path);
  }
  return keep;
}
