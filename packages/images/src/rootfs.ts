import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { PolydevError } from "@polydev/core";
import type { BlobStore } from "./blob-store.js";
import type { ImageLayer } from "./image-import.js";
import { unpackLayer } from "./unpack-layer.js";

export interface AssembleLimits {
  /** Most file bytes written across all layers. */
  maxBytes: number;
  /** Most entries across all layers. */
  maxEntries: number;
  maxPathLength?: number;
  signal?: AbortSignal;
  /** As unpackLayer's: told the archive's owner of each created path (later layers override). */
  onOwner?: (path: string, uid: number, gid: number) => void;
}

export interface AssembleResult {
  layers: number;
  entries: number;
  bytes: number;
  whiteouts: number;
  skippedSpecialFiles: number;
  ignoredExtendedAttributes: number;
}

/**
 * Unpacks `layers` in order (base first) from `store` into `targetDir`, which must be empty or
 * absent; each layer's whiteouts apply to what the layers below left. Every blob is re-hashed as it
 * is read, so a blob damaged on disk is refused (`internal`) rather than silently used. On failure
 * `targetDir`'s partial content is removed (the directory itself stays) and the error rethrown.
 */
export async function assembleRootfs(
  store: BlobStore,
  layers: readonly ImageLayer[],
  targetDir: string,
  limits: AssembleLimits,
): Promise<AssembleResult> {
  const root = resolve(targetDir);
  await mkdir(root, { recursive: true, mode: 0o755 });
  const existing = await readdir(root);
  if (existing.length > 0) {
    throw new PolydevError("invalid_request", `the rootfs target ${root} is not empty`, {
      details: { entries: existing.length },
    });
  }
  const totals: AssembleResult = {
    layers: 0,
    entries: 0,
    bytes: 0,
    whiteouts: 0,
    skippedSpecialFiles: 0,
    ignoredExtendedAttributes: 0,
  };
  try {
    for (const layer of layers) {
      limits.signal?.throwIfAborted();
      const verifier = new DigestVerifier(layer.digest);
      const blob = await store.open(layer.digest);
      blob.on("error", (error) => verifier.destroy(error));
      const result = await unpackLayer(blob.pipe(verifier), root, {
        maxBytes: limits.maxBytes - totals.bytes,
        maxEntries: limits.maxEntries - totals.entries,
        maxPathLength: limits.maxPathLength,
        signal: limits.signal,
        onOwner: limits.onOwner,
      });
      totals.layers += 1;
      totals.entries += result.entries;
      totals.bytes += result.bytes;
      totals.whiteouts += result.whiteouts;
      totals.skippedSpecialFiles += result.skippedSpecialFiles;
      totals.ignoredExtendedAttributes += result.ignoredExtendedAttributes;
    }
    return totals;
  } catch (error) {
    await emptyDirectory(root);
    throw error;
  }
}

/** Passes a blob through, failing at its end if it does not hash to its digest. */
class DigestVerifier extends Transform {
  private readonly hash = createHash("sha256");

  constructor(private readonly digest: string) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = `sha256:${this.hash.digest("hex")}`;
    if (actual !== this.digest) {
      callback(
        new PolydevError("internal", `the stored blob ${this.digest} is damaged (it hashes to ${actual})`, {
          details: { digest: this.digest },
        }),
      );
      return;
    }
    callback();
  }
}

/**
 * Removes everything inside `root`, never following a symlink; directories a layer made read-only
 * are made writable first (this matters when not running as root).
 */
export async function emptyDirectory(root: string): Promise<void> {
  for (const name of await readdir(root)) {
    const path = join(root, name);
    const stats = await lstat(path);
    if (stats.isDirectory()) {
      await chmod(path, 0o700);
      await emptyDirectory(path);
    }
    await rm(path, { recursive: true, force: true });
  }
}
