/**
 * What an image sandbox needs on the host besides what every sandbox has: a disk (a directory
 * of the storage pool, limited to exactly its diskMb, holding the overlay's upper and work
 * directories) and the starter's `--image` arguments (native/image-root.c builds the sandbox).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import type { SandboxImage } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { imagePasswdEntry } from "@polydev/images";
import { EXEC_DIR_IN_SANDBOX, EXEC_SERVER_IN_SANDBOX, EXEC_SOCKET_NAME } from "./bwrap-args.js";

/** The storage pool's shape as this driver uses it (see @polydev/images StoragePool). */
export interface DiskStorage {
  readonly root: string;
  createDir(relPath: string, limitBytes: number | null): Promise<string>;
  cloneDir(fromRel: string, toRel: string, limitBytes: number | null): Promise<string>;
  setLimit(relPath: string, limitBytes: number): Promise<void>;
  usage(relPath: string): Promise<{ bytes: number; inodes: number }>;
  removeDir(relPath: string): Promise<void>;
}

/** Each image sandbox's user namespace maps this many uids (0..65535) onto its own host block. */
export const UIDS_PER_SANDBOX = 65_536;

/** What meta.json keeps of an image sandbox, to start it again from its disk. */
export interface ImageMeta {
  name: string;
  digest: string;
  layers: string[];
  /** The disk, relative to the storage root. */
  disk: string;
  user: string;
  home: string;
  /** Bytes of the image's own files, counted within diskMb (see changesLimit); older metas lack it. */
  imageBytes?: number;
  /** The image config's environment and WORKDIR (older metas lack them). */
  env?: Record<string, string>;
  workdir?: string | undefined;
}

/** The smallest disk the storage pool makes (its MIN_VOLUME_BYTES). */
const MIN_DISK_BYTES = 16 * 1024 * 1024;

/**
 * What the disk itself may hold: diskMb is the whole file system the sandbox sees, its image's
 * files included, and the disk holds only the changes to them.
 */
export function changesLimit(diskMb: number, imageBytes: number): number {
  return Math.max(MIN_DISK_BYTES, diskMb * 1024 * 1024 - imageBytes);
}

/**
 * A sandbox's disk in the pool, whose names are lowercase: named by a hash of the id (ids have
 * capitals and underscores), so it is found again from the id alone.
 */
export function diskPath(sandboxId: string): string {
  return `disks/${createHash("sha256").update(sandboxId).digest("hex").slice(0, 40)}`;
}

/**
 * The home of the image's default user, from the image's own /etc/passwd (see
 * imagePasswdEntry). Its changes inside a
 * sandbox are the sandbox's business: this is only where commands and file paths start.
 */
export function homeOf(user: string, layers: readonly string[]): string {
  const fallback = user === "root" || user === "0" ? "/root" : user === "user" ? "/home/user" : "/";
  const home = imagePasswdEntry(user, layers)?.home;
  return home?.startsWith("/") ? home : fallback;
}

export function imageMeta(sandboxId: string, image: SandboxImage): ImageMeta {
  const user = image.user ?? "root";
  return {
    name: image.name,
    digest: image.digest,
    layers: [...image.layers],
    disk: diskPath(sandboxId),
    user,
    home: homeOf(user, image.layers),
    imageBytes: image.sizeBytes ?? 0,
    env: { ...image.env },
    workdir: image.workdir,
  };
}

/**
 * The disk's directories, owned by the image's root (uid 0, unshifted: the idmapped mount shows
 * it as root inside). `limitBytes` applies only when the disk is made here; an existing one (a
 * stopped sandbox's, a fork's copy, a spare) is used as it is.
 */
export async function prepareDisk(
  storage: DiskStorage,
  rel: string,
  limitBytes: number,
  /** create: make the disk; empty: it is new (made now or a spare), nothing of a sandbox's in it. */
  how: { create: boolean; empty: boolean; image?: ImageMeta },
): Promise<string> {
  const dir = how.create ? await storage.createDir(rel, limitBytes) : join(storage.root, rel);
  const { image } = how;
  for (const name of ["upper", "work"]) {
    const path = join(dir, name);
    await mkdir(path, { recursive: true, mode: 0o755 });
    await chown(path, 0, 0);
    await chmod(path, 0o755);
  }
  // A home the image lacks (a distroless image has no /root) is made on a fresh disk, where
  // nothing of the sandbox's exists yet to point anywhere.
  if (
    how.empty &&
    image !== undefined &&
    image.home !== "/" &&
    !image.layers.some((layer) => existsSync(join(layer, image.home)))
  ) {
    await mkdir(join(dir, "upper", image.home), { recursive: true, mode: 0o700 });
  }
  return dir;
}

/** A path inside the storage root as the pool names it; anything outside is refused. */
export function storageRelative(storage: DiskStorage, path: string): string {
  const rel = relative(resolve(storage.root), resolve(path));
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw new PolydevError("invalid_request", `${path} is not inside the storage pool ${storage.root}`);
  }
  return rel;
}

/** The starter's arguments after its opened files (see image_sandbox_main). */
export function imageStarterArgs(options: {
  hostBase: number;
  layers: string[];
  disk: string;
  toolbox: string | undefined;
  execServerCopy: string;
  procsFiles: string[];
}): string[] {
  return [
    "--image",
    String(options.hostBase),
    String(UIDS_PER_SANDBOX),
    String(options.layers.length),
    ...options.layers,
    options.disk,
    options.toolbox ?? "-",
    options.execServerCopy,
    String(options.procsFiles.length),
    ...options.procsFiles,
    "--",
    EXEC_SERVER_IN_SANDBOX,
    "--root",
    `${EXEC_DIR_IN_SANDBOX}/${EXEC_SOCKET_NAME}`,
  ];
}
