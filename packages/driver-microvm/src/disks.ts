/**
 * The disks of a microVM, all built on the host without mounting anything into the guest:
 * - the image's root: one read-only ext4 per image digest (`mkfs.ext4 -d` of its merged layers),
 *   shared by every sandbox of the image and by its boot snapshot;
 * - the toolbox: one read-only ext4 of the toolbox directory, keyed by its (content-named) path;
 * - a sandbox's changes disk: the overlay's upper layer, a qcow2 whose backing file is an empty
 *   ext4 formatted once per size. Its virtual size is the sandbox's disk bound: the guest cannot
 *   write past it and the host file never grows past it (plus qcow2's own metadata).
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { PolydevError } from "@polydev/core";
import { ensureCacheEntry } from "./cache-entry.js";
import { hostCommand } from "./host-command.js";

const MiB = 1024 * 1024;
/** ext4's own needs: a journal, inode tables, some slack over the files' bytes. */
const FS_SLACK_BYTES = 48 * MiB;

async function treeSize(dir: string): Promise<{ bytes: number; inodes: number }> {
  const kib = Number((await hostCommand("du", ["-sk", "-x", dir], { what: "du" })).split(/\s/)[0]);
  const inodes = Number(
    (await hostCommand("/bin/sh", ["-c", 'find "$1" -xdev | wc -l', "sh", dir], { what: "find" })).trim(),
  );
  return { bytes: kib * 1024, inodes };
}

/** An ext4 file with the files of `sourceDir` (owners kept), made read-only by its users. */
async function ext4FromDir(sourceDir: string, target: string, label: string): Promise<void> {
  const { bytes, inodes } = await treeSize(sourceDir);
  const size = Math.ceil((bytes * 1.15 + FS_SLACK_BYTES) / MiB) * MiB;
  await hostCommand(
    "mkfs.ext4",
    [
      "-q",
      "-F",
      "-L",
      label,
      "-m",
      "0",
      "-N",
      String(Math.ceil(inodes * 1.1) + 1024),
      "-d",
      sourceDir,
      target,
      `${size / MiB}M`,
    ],
    { what: "mkfs.ext4 -d" },
  );
}

/** Layers merged by a read-only overlay mount (whiteouts applied), or the one layer itself. */
async function withMergedLayers<T>(layers: readonly string[], use: (dir: string) => Promise<T>): Promise<T> {
  const only = layers[0];
  if (layers.length === 1 && only !== undefined) return use(only);
  for (const layer of layers) {
    if (/[:,\n]/.test(layer) || !layer.startsWith("/")) {
      throw new PolydevError("invalid_request", `layer path ${layer} cannot be given to overlayfs`);
    }
  }
  const mountPoint = await mkdtemp(join(tmpdir(), "polydev-microvm-merge-"));
  try {
    await hostCommand(
      "mount",
      ["-t", "overlay", "-o", `ro,lowerdir=${[...layers].reverse().join(":")}`, "overlay", mountPoint],
      { what: "mounting the image's layers" },
    );
    try {
      return await use(mountPoint);
    } finally {
      await hostCommand("umount", [mountPoint]).catch(() => hostCommand("umount", ["-l", mountPoint]));
    }
  } finally {
    await rm(mountPoint, { recursive: true, force: true });
  }
}

function imageDiskKey(digest: string, layers: readonly string[]): string {
  // The digest names the image's content; the layer paths where this host keeps it.
  return createHash("sha256").update(digest).update(layers.join("\n")).digest("hex").slice(0, 24);
}

/** Where an image's root disk is (or would be), without building it. */
export function imageDiskPath(cacheDir: string, digest: string, layers: readonly string[]): string {
  return join(cacheDir, `root-${imageDiskKey(digest, layers)}`, "root.ext4");
}

export async function ensureImageDisk(
  cacheDir: string,
  digest: string,
  layers: readonly string[],
): Promise<string> {
  const key = imageDiskKey(digest, layers);
  const entry = await ensureCacheEntry(cacheDir, `root-${key}`, async (partial) => {
    await withMergedLayers(layers, (dir) => ext4FromDir(dir, join(partial, "root.ext4"), "pdroot"));
  });
  return join(entry, "root.ext4");
}

export async function ensureToolboxDisk(cacheDir: string, toolboxDir: string): Promise<string> {
  const info = await stat(toolboxDir);
  const key = createHash("sha256")
    .update(`${toolboxDir}\n${basename(toolboxDir)}\n${info.mtimeMs}`)
    .digest("hex")
    .slice(0, 24);
  const entry = await ensureCacheEntry(cacheDir, `toolbox-${key}`, async (partial) => {
    await ext4FromDir(toolboxDir, join(partial, "toolbox.ext4"), "pdtoolbox");
  });
  return join(entry, "toolbox.ext4");
}

/** An empty ext4 of exactly `bytes`, the backing file of every changes disk of that size. */
export async function ensureEmptyDisk(cacheDir: string, bytes: number): Promise<string> {
  const entry = await ensureCacheEntry(cacheDir, `empty-${bytes}`, async (partial) => {
    const file = join(partial, "empty.ext4");
    await hostCommand("/bin/sh", ["-c", ': > "$1"', "sh", file]);
    await truncate(file, bytes);
    // No journal below 64 MiB: it would take a large share of a small disk.
    const journal = bytes >= 64 * MiB ? [] : ["-O", "^has_journal"];
    await hostCommand("mkfs.ext4", ["-q", "-F", "-L", "pdchanges", "-m", "0", ...journal, file], {
      what: "mkfs.ext4",
    });
  });
  return join(entry, "empty.ext4");
}

/** A sandbox's changes disk: a qcow2 over the empty ext4 of its size. */
export async function createChangesDisk(emptyDisk: string, target: string): Promise<void> {
  await hostCommand("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", emptyDisk, target], {
    what: "qemu-img create",
  });
}
