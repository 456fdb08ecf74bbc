/**
 * The disks of a fork. A sandbox's changes disk is a chain of qcow2 files: its own top (the one
 * QEMU writes) over frozen layers over the empty ext4 of its size. A fork freezes the source's
 * top at one instant: that file becomes a shared layer, read-only from then on, and the source
 * and every fork each get a new top over it. Nothing is copied; each writes only its own top.
 *
 * Frozen layers live in `<rootDir>/layers` (root-owned, traverse only, mode 0711), each named by
 * 128 random bits, root-owned and mode 0644: a VM's uid can open a layer only by a name it was
 * never told (the qcow2 headers naming them belong to other uids, mode 0600; the driver's
 * metadata is root's). Every sandbox whose chain holds a layer keeps a hard link to it in its
 * own root-owned directory: a layer whose only link is its `layers` entry is no one's and goes.
 */
import { randomBytes } from "node:crypto";
import { chmod, chown, link, mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";
import { hostCommand } from "./host-command.js";

const LAYERS = "layers";
const LAYER_NAME = /^[0-9a-f]{32}\.qcow2$/;

export function layersDir(rootDir: string): string {
  return join(rootDir, LAYERS);
}

export function layerPath(rootDir: string, name: string): string {
  if (!LAYER_NAME.test(name)) throw new PolydevError("internal", `not a layer name: ${name}`);
  return join(rootDir, LAYERS, name);
}

/**
 * A new top over the frozen layer `backing`. `-u`: qemu-img does not open the backing file
 * (the running source holds its lock); its format and size are known.
 */
export async function createTop(backing: string, target: string, sizeBytes: number): Promise<void> {
  await hostCommand(
    "qemu-img",
    ["create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", backing, target, String(sizeBytes)],
    { what: "qemu-img create" },
  );
}

/** A fresh name in the shared directory for the top about to be frozen (linked in by `freezeLayer`). */
export async function newLayerName(rootDir: string): Promise<string> {
  await mkdir(layersDir(rootDir), { recursive: true, mode: 0o711 });
  await chmod(layersDir(rootDir), 0o711);
  return `${randomBytes(16).toString("hex")}.qcow2`;
}

/**
 * The source's top, now below its new top, becomes the shared layer `name`: linked in, then
 * root's and read-only (the source's QEMU already holds it read-only: a backing file is).
 */
export async function freezeLayer(rootDir: string, top: string, name: string): Promise<void> {
  const path = layerPath(rootDir, name);
  await link(top, path);
  await chown(path, 0, 0);
  await chmod(path, 0o444);
}

/** The sandbox's hard links to every layer of its chain (its share of them). */
export async function holdLayers(
  sandboxDir: string,
  rootDir: string,
  names: readonly string[],
): Promise<void> {
  const held = join(sandboxDir, LAYERS);
  await mkdir(held, { recursive: true, mode: 0o700 });
  for (const name of names) {
    await link(layerPath(rootDir, name), join(held, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
  }
}

/** Removes every layer no sandbox holds any more (after a destroy, or a failed fork). */
export async function sweepLayers(rootDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(layersDir(rootDir));
  } catch {
    return;
  }
  for (const name of names.filter((entry) => LAYER_NAME.test(entry))) {
    const path = join(layersDir(rootDir), name);
    const info = await stat(path).catch(() => undefined);
    if (info !== undefined && info.nlink <= 1) await rm(path, { force: true });
  }
}
