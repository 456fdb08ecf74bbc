import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  open as openFile,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  statfs,
  truncate,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { PolydevError } from "@polydev/core";

/**
 * The storage pool: one host file system holding the image store's layer directories and every
 * sandbox's disk, so that snapshots and forks are copy-on-write clones, never byte copies.
 *
 * The design the brief asked for (XFS project quotas) is impossible on this kernel: it is built
 * without CONFIG_XFS_QUOTA ("XFS: quota support not available in this kernel") and without
 * CONFIG_QFMT_V2 (so ext4 quotas are out too), and btrfs qgroups answer EDQUOT, not ENOSPC, and
 * count shared extents loosely. So the pool is built from the two things that do work here:
 *
 * - The pool itself is XFS with reflink on a sparse loop file under the data directory (no
 *   quotas). Directories without a limit (image layers) are plain directories in it; cloning one
 *   is `cp -a --reflink=always`.
 * - A directory WITH a limit (a sandbox disk) is a "volume": its own ext4 file system in a sparse
 *   image file inside the pool (`.volumes/<name>.img`), loop-mounted at the directory. The limit
 *   is the file system's size, so it is exact, a full disk answers ENOSPC to every writer (root
 *   included: no reserved blocks) and nothing else, the inode count is proportional to the size,
 *   and it is as durable as any file system (a sync inside reaches the pool's file through the
 *   loop device's flush). Cloning a volume freezes it for an instant and reflinks its image file
 *   (FICLONE: constant time, shared extents), so fork and snapshot of a disk of any size cost the
 *   same. Growing is `truncate` + `losetup -c` + online `resize2fs`; where the server lacks
 *   CAP_SYS_RESOURCE (these build machines), ext4 refuses an online resize, so a disk then grows
 *   while its sandbox is stopped (unmount, e2fsck, resize2fs, mount).
 *
 * Host mounts are `nosuid,nodev`: disks and layers hold the image's own uids unshifted (uid 0 is
 * the image's root), so a setuid-root file in them must mean nothing on the host. A driver's
 * idmapped clone of a mount clears MOUNT_ATTR_NOSUID for the sandbox, where uid 0 is its own.
 *
 * Only server-chosen values reach argv (the pool's paths, validated relative paths, sizes); the
 * tools run with a fixed environment.
 */

export interface StoragePoolLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

export interface StoragePoolOptions {
  /** Where the pool is mounted, e.g. `<dataDir>/pool`. */
  mountPoint: string;
  /** The sparse file holding the pool's XFS file system, e.g. `<dataDir>/pool.xfs`. */
  imageFile: string;
  /**
   * The pool's size. Default: 80% of the free space of the file system holding `imageFile`, at
   * least 10 GiB (the file is sparse, so only what is used takes host space). Larger than the
   * existing pool: it grows on `open()` (XFS cannot shrink; a smaller value is ignored).
   */
  sizeBytes?: number;
  log?: StoragePoolLog;
}

export interface StorageUsage {
  bytes: number;
  inodes: number;
}

/** Volumes smaller than this cannot hold an ext4 journal and useful data. */
export const MIN_VOLUME_BYTES = 16 * 1024 * 1024;
/** One inode per this many bytes of a volume (ext4's `-i`). */
export const VOLUME_BYTES_PER_INODE = 8192;
const MIN_POOL_BYTES = 10 * 1024 ** 3;
const BLOCK = 4096;
const VOLUMES_DIR = ".volumes";
const TEMP_DIR = ".tmp";
const TEMPLATES_DIR = ".templates";
/** Volumes mounted at once by `open()` after a reboot (each mount is mostly waiting on I/O). */
const REMOUNT_CONCURRENCY = 4;
const RELATIVE_PATH = /^[a-z0-9._-]+(?:\/[a-z0-9._-]+)*$/;
const TOOL_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" };
const MOUNT_OPTIONS = "discard,nosuid,nodev";

const noopLog: StoragePoolLog = { info: () => undefined, warn: () => undefined };

export class StoragePool {
  readonly root: string;
  private readonly imageFile: string;
  private readonly sizeBytes: number | undefined;
  private readonly log: StoragePoolLog;
  private opening: Promise<void> | undefined;
  /** `root` with symlinks resolved, as /proc/self/mountinfo names it; set by `open()`. */
  private resolvedRoot: string;
  private readonly locks = new Map<string, Promise<void>>();

  constructor(options: StoragePoolOptions) {
    this.root = options.mountPoint;
    this.imageFile = options.imageFile;
    this.sizeBytes = options.sizeBytes;
    this.log = options.log ?? noopLog;
    this.resolvedRoot = options.mountPoint;
  }

  /**
   * Idempotent. Creates the pool's file and file system on first use, mounts it (reuses an
   * existing mount of the same file), then mounts every volume that is not mounted: after a host
   * reboot nothing is, after a server restart everything still is.
   */
  open(): Promise<void> {
    if (this.opening === undefined) {
      this.opening = this.openOnce();
      // A failed open may be retried (the caller sees the rejection of the first call).
      this.opening.catch(() => {
        this.opening = undefined;
      });
    }
    return this.opening;
  }

  private async openOnce(): Promise<void> {
    await mkdir(dirname(this.imageFile), { recursive: true });
    await mkdir(this.root, { recursive: true });
    this.resolvedRoot = await realpath(this.root);
    if (!(await exists(this.imageFile))) await this.createPoolFile();
    const mounted = (await readMounts()).get(this.resolvedRoot);
    if (mounted === undefined) {
      await mountImage("xfs", this.imageFile, this.root);
      this.log.info({ root: this.root, imageFile: this.imageFile }, "storage pool mounted");
    } else if (!(await backedBy(mounted.source, this.imageFile))) {
      throw new PolydevError(
        "driver_unavailable",
        `${this.root} is already a mount of ${mounted.source}, not of the storage pool ${this.imageFile}; unmount it or choose another data directory`,
      );
    }
    await this.growPoolIfAsked();
    for (const dir of [VOLUMES_DIR, TEMP_DIR, TEMPLATES_DIR]) {
      await mkdir(join(this.root, dir), { recursive: true, mode: 0o700 });
      await chmod(join(this.root, dir), 0o700);
    }
    // Leftovers of a create or clone a crash interrupted: never renamed into place, so unused.
    await rm(join(this.root, TEMP_DIR), { recursive: true, force: true });
    await mkdir(join(this.root, TEMP_DIR), { mode: 0o700 });
    await this.mountAllVolumes();
  }

  /**
   * Mounts every volume not mounted (all of them after a reboot), a few at a time and shallowest
   * first. One that fails is logged and left unmounted (its operations fail later), so one bad
   * disk does not keep the pool, and every other sandbox, from starting.
   */
  private async mountAllVolumes(): Promise<void> {
    const mounts = await readMounts();
    const pending: string[] = [];
    for (const name of await readdir(join(this.root, VOLUMES_DIR))) {
      const relPath = name.slice(0, -".img".length).replaceAll("+", "/");
      if (!name.endsWith(".img") || !RELATIVE_PATH.test(relPath)) continue;
      if (!mounts.has(this.mountKey(relPath))) pending.push(relPath);
    }
    const loops = pending.length > 0 ? await attachedLoops() : new Map<string, string>();
    const depth = (relPath: string): number => relPath.split("/").length;
    for (const level of [...new Set(pending.map(depth))].sort((a, b) => a - b)) {
      const batch = pending.filter((relPath) => depth(relPath) === level);
      const workers = Array.from({ length: Math.min(REMOUNT_CONCURRENCY, batch.length) }, async () => {
        for (let relPath = batch.pop(); relPath !== undefined; relPath = batch.pop()) {
          await this.mountVolume(relPath, loops).catch((error: unknown) => {
            this.log.warn({ relPath, err: error }, "storage pool volume could not be mounted");
          });
        }
      });
      await Promise.all(workers);
    }
    if (pending.length > 0) this.log.info({ count: pending.length }, "storage pool volumes mounted");
  }

  private async createPoolFile(): Promise<void> {
    const size = this.sizeBytes ?? (await defaultPoolSize(dirname(this.imageFile)));
    // Formatted under a temporary name: a crash leaves no half-made pool behind the real name.
    const temp = `${this.imageFile}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await (await openFile(temp, "wx", 0o600)).close();
      await truncate(temp, roundDown(size));
      await run("mkfs.xfs", ["-q", "-m", "reflink=1", "--", temp]);
      await rename(temp, this.imageFile);
      await syncDirectory(dirname(this.imageFile));
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    this.log.info({ imageFile: this.imageFile, sizeBytes: size }, "storage pool created");
  }

  private async growPoolIfAsked(): Promise<void> {
    if (this.sizeBytes === undefined) return;
    const current = (await stat(this.imageFile)).size;
    const wanted = roundDown(this.sizeBytes);
    if (wanted <= current) return;
    const device = await this.deviceOf(this.resolvedRoot);
    await truncate(this.imageFile, wanted);
    await run("losetup", ["-c", device]);
    await run("xfs_growfs", ["--", this.root]);
    this.log.info({ from: current, to: wanted }, "storage pool grown");
  }

  /**
   * A directory in the pool. With a limit it is a volume of exactly that many bytes (writes past
   * it fail with ENOSPC); without one a plain directory (image layers). Parent directories are
   * created; the pool's top-level directories are root-only (0700). Idempotent for a directory
   * of the same kind; a different kind is a conflict.
   */
  async createDir(relPath: string, limitBytes: number | null): Promise<string> {
    checkRelPath(relPath);
    if (limitBytes !== null) checkVolumeSize(limitBytes);
    return this.locked([relPath], async () => {
      const target = join(this.root, relPath);
      const volume = await this.isVolume(relPath);
      if (limitBytes === null) {
        if (volume) throw new PolydevError("conflict", `${relPath} already exists with a size limit`);
        await this.makeParents(relPath);
        await mkdir(target, { recursive: true, mode: 0o700 });
        return target;
      }
      if (volume) return target;
      if (await exists(target)) {
        throw new PolydevError("conflict", `${relPath} already exists without a size limit`);
      }
      const template = await this.emptyVolume(roundDown(limitBytes));
      const temp = this.tempPath();
      try {
        await reflink(template, temp);
        await rename(temp, this.volumeFile(relPath));
        await syncDirectory(dirname(this.volumeFile(relPath)));
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
      await this.mountVolume(relPath, "fresh");
      this.log.info({ relPath, limitBytes }, "storage pool volume created");
      return target;
    });
  }

  /**
   * An empty, never-mounted volume of `sizeBytes`, made once per size and kept in `.templates`:
   * a new disk is a reflink of it (no mkfs on the create path), the same way a clone is.
   */
  private async emptyVolume(sizeBytes: number): Promise<string> {
    const template = join(this.root, TEMPLATES_DIR, `${sizeBytes}.img`);
    if (await exists(template)) return template;
    const temp = this.tempPath();
    try {
      await (await openFile(temp, "wx", 0o600)).close();
      await truncate(temp, sizeBytes);
      await run("mkfs.ext4", [
        "-q",
        "-F",
        "-b",
        String(BLOCK),
        "-i",
        String(VOLUME_BYTES_PER_INODE),
        // No blocks reserved for uid 0: the image's root writes as uid 0 here, and the limit
        // must be the same for every writer.
        "-m",
        "0",
        "-J",
        `size=${journalMb(sizeBytes)}`,
        "--",
        temp,
      ]);
      // Two creators racing both make one; the rename keeps either, both complete.
      await rename(temp, template);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return template;
  }

  /**
   * A copy-on-write clone of `fromRel` at `toRel`: never a byte copy (refused where reflinks are
   * unavailable). Owners (any uid), modes including setuid, xattrs (user.overlay.*, trusted.*),
   * overlay whiteouts, hard links, symlinks and holes are kept.
   *
   * A volume's clone is a volume: the source's file system is synced (so the clone holds every
   * write made before the call), then its image file is reflinked in one atomic step, in
   * constant time. A write racing with the call lands in the clone or not, as after a power cut:
   * ext4's journal makes that a consistent file system (replayed at the clone's first mount).
   * Freezing instead would cost 30-70 ms even on an idle disk (a journal checkpoint). Its limit is
   * `limitBytes`, or the source's when null; smaller than the source is refused. A plain
   * directory's clone is a plain directory (`cp -a --reflink=always`); a limit for it is refused,
   * since filling a volume from a plain directory would be a byte copy.
   */
  async cloneDir(fromRel: string, toRel: string, limitBytes: number | null): Promise<string> {
    checkRelPath(fromRel);
    checkRelPath(toRel);
    if (fromRel === toRel || toRel.startsWith(`${fromRel}/`) || fromRel.startsWith(`${toRel}/`)) {
      throw new PolydevError("invalid_request", `cannot clone ${fromRel} into ${toRel}: they overlap`);
    }
    if (limitBytes !== null) checkVolumeSize(limitBytes);
    return this.locked([fromRel, toRel], async () => {
      const source = join(this.root, fromRel);
      const target = join(this.root, toRel);
      if (await exists(target)) throw new PolydevError("conflict", `${toRel} already exists`);
      if (await this.isVolume(fromRel)) {
        await this.cloneVolume(fromRel, toRel, limitBytes);
        return target;
      }
      if (!(await exists(source))) throw new PolydevError("not_found", `${fromRel} does not exist`);
      if (limitBytes !== null) {
        throw new PolydevError(
          "invalid_request",
          `${fromRel} has no size limit, so its clone cannot have one (that would be a byte copy); clone it without a limit`,
        );
      }
      await this.makeParents(toRel);
      const temp = this.tempPath();
      try {
        // -a keeps owners, modes, times, links, hard links and xattrs; xattr named explicitly so a
        // failure to copy one is an error, not a silent loss of overlay markers.
        await run("cp", ["-a", "--preserve=all,xattr", "--reflink=always", "--", source, temp]);
        await rename(temp, target);
      } catch (error) {
        await rm(temp, { recursive: true, force: true });
        throw error;
      }
      return target;
    });
  }

  private async cloneVolume(fromRel: string, toRel: string, limitBytes: number | null): Promise<void> {
    const sourceFile = this.volumeFile(fromRel);
    const sourceSize = (await stat(sourceFile)).size;
    const size = limitBytes === null ? sourceSize : roundDown(limitBytes);
    if (size < sourceSize) {
      throw new PolydevError(
        "invalid_request",
        `the clone's limit ${size} is smaller than ${fromRel}'s size ${sourceSize}; disks can grow but not shrink`,
      );
    }
    const temp = this.tempPath();
    try {
      await this.synced(fromRel);
      await reflink(sourceFile, temp);
      // Nobody uses the copy yet, so it grows offline, before its first mount.
      if (size > sourceSize) await resizeOffline(temp, size);
      await rename(temp, this.volumeFile(toRel));
      await syncDirectory(dirname(this.volumeFile(toRel)));
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    await this.mountVolume(toRel, "fresh");
    this.log.info({ fromRel, toRel, sizeBytes: size }, "storage pool volume cloned");
  }

  /**
   * Grows a volume to `limitBytes`: online where the server may (resizing a mounted ext4 needs
   * CAP_SYS_RESOURCE), otherwise offline, which needs every mount of it gone (its sandbox
   * stopped): a `conflict` says so. Shrinking is refused (below usage, or at all: ext4 shrinks
   * only unmounted, and a disk is only ever grown).
   */
  async setLimit(relPath: string, limitBytes: number): Promise<void> {
    checkRelPath(relPath);
    checkVolumeSize(limitBytes);
    await this.locked([relPath], async () => {
      if (!(await this.isVolume(relPath))) {
        throw new PolydevError(
          "invalid_request",
          `${relPath} was created without a size limit, so it has none to change`,
        );
      }
      const file = this.volumeFile(relPath);
      const current = (await stat(file)).size;
      const wanted = roundDown(limitBytes);
      if (wanted === current) return;
      if (wanted < current) {
        const used = (await this.volumeUsage(relPath)).bytes;
        throw new PolydevError(
          "invalid_request",
          used > wanted
            ? `${relPath} uses ${used} bytes, more than the requested ${wanted}`
            : `${relPath} can grow but not shrink (from ${current} to ${wanted} bytes)`,
          { details: { usedBytes: used, limitBytes: current } },
        );
      }
      const online = await this.growOnline(relPath, current, wanted);
      if (!online) await this.growUnmounted(relPath, current, wanted);
      this.log.info({ relPath, from: current, to: wanted, online }, "storage pool volume grown");
    });
  }

  /** False when the kernel refuses an online resize to this process (no CAP_SYS_RESOURCE). */
  private async growOnline(relPath: string, current: number, wanted: number): Promise<boolean> {
    const file = this.volumeFile(relPath);
    const device = await this.deviceOf(this.mountKey(relPath));
    await truncate(file, wanted);
    try {
      await run("losetup", ["-c", device]);
      await run("resize2fs", ["--", device]);
      return true;
    } catch (error) {
      if (
        !(error instanceof PolydevError) ||
        !/Permission denied|Operation not permitted/.test(error.message)
      ) {
        throw error;
      }
      // The file system never grew into the new space, so the file can take its old size back.
      await truncate(file, current);
      await run("losetup", ["-c", device]);
      return false;
    }
  }

  private async growUnmounted(relPath: string, current: number, wanted: number): Promise<void> {
    const file = this.volumeFile(relPath);
    await unmount(join(this.root, relPath));
    // A sandbox's own (idmapped) mounts keep the file system alive after the host's mount goes;
    // resizing under them would corrupt it, so wait for the loop device to be released.
    if (!(await loopReleased(file))) {
      await this.mountVolume(relPath);
      throw new PolydevError(
        "conflict",
        `${relPath} is in use, and this host can grow a disk only while it is unused: stop its sandbox and retry`,
      );
    }
    try {
      await resizeOffline(file, wanted);
    } catch (error) {
      await truncate(file, current).catch(() => undefined);
      throw error;
    } finally {
      await this.mountVolume(relPath);
    }
  }

  /** The limit of a directory in bytes, or null when it has none. */
  async limit(relPath: string): Promise<number | null> {
    checkRelPath(relPath);
    await this.open();
    if (!(await this.isVolume(relPath))) {
      if (!(await exists(join(this.root, relPath))))
        throw new PolydevError("not_found", `${relPath} does not exist`);
      return null;
    }
    return (await stat(this.volumeFile(relPath))).size;
  }

  /** Bytes and inodes a directory uses (a volume: its file system's count, metadata included). */
  async usage(relPath: string): Promise<StorageUsage> {
    checkRelPath(relPath);
    await this.open();
    if (await this.isVolume(relPath)) return this.volumeUsage(relPath);
    const target = join(this.root, relPath);
    if (!(await exists(target))) throw new PolydevError("not_found", `${relPath} does not exist`);
    return treeUsage(target);
  }

  /** Removes a directory and everything in it; a volume is unmounted and its file deleted. Idempotent. */
  async removeDir(relPath: string): Promise<void> {
    checkRelPath(relPath);
    await this.locked([relPath], async () => {
      const target = join(this.root, relPath);
      if (await exists(this.volumeFile(relPath))) {
        if ((await readMounts()).has(this.mountKey(relPath))) await unmount(target);
        await rm(this.volumeFile(relPath), { force: true });
        await rmdir(target).catch(ignoreMissing);
        this.log.info({ relPath }, "storage pool volume removed");
        return;
      }
      // Volumes nested below a plain directory go first, so rm never descends into a mount.
      for (const name of await readdir(join(this.root, VOLUMES_DIR))) {
        const nested = name.slice(0, -".img".length).replaceAll("+", "/");
        if (name.endsWith(".img") && nested.startsWith(`${relPath}/`)) {
          if ((await readMounts()).has(this.mountKey(nested))) await unmount(join(this.root, nested));
          await rm(join(this.root, VOLUMES_DIR, name), { force: true });
        }
      }
      await rm(target, { recursive: true, force: true });
    });
  }

  /** Unmounts every volume, then the pool (tests; a host shutdown does the same). */
  async close(): Promise<void> {
    await this.opening?.catch(() => undefined);
    this.opening = undefined;
    const mounts = await readMounts();
    const prefix = `${this.resolvedRoot}/`;
    // Deepest first, so a volume mounted inside another comes off before it.
    const inside = [...mounts.keys()]
      .filter((path) => path.startsWith(prefix))
      .sort((a, b) => b.length - a.length);
    for (const path of inside) await unmount(path);
    if (mounts.has(this.resolvedRoot)) {
      try {
        await unmount(this.root);
      } catch (error) {
        // Another mount namespace still holds a volume (it unshared while the volume was
        // mounted), so its loop device keeps a file in the pool open. Detach the pool here; the
        // kernel finishes when that namespace ends, and a later open() remounts the same device.
        this.log.warn({ root: this.root, err: error }, "storage pool busy elsewhere: detached lazily");
        await run("umount", ["-l", "--", this.root]);
      }
    }
    this.log.info({ root: this.root }, "storage pool unmounted");
  }

  /**
   * loops: "fresh" when the volume's file was made just now (no loop device can be attached to
   * it yet), or the loop devices already listed (a remount of many volumes lists them once).
   */
  private async mountVolume(relPath: string, loops?: "fresh" | Map<string, string>): Promise<void> {
    const target = join(this.root, relPath);
    await this.makeParents(relPath);
    await mkdir(target, { recursive: true, mode: 0o700 });
    await mountImage("ext4", this.volumeFile(relPath), target, loops);
  }

  private async volumeUsage(relPath: string): Promise<StorageUsage> {
    const fs = await statfs(join(this.root, relPath));
    return { bytes: (fs.blocks - fs.bfree) * fs.bsize, inodes: fs.files - fs.ffree };
  }

  /** Flushes a mounted volume's dirty data and journal down to its image file (syncfs). */
  private async synced(relPath: string): Promise<void> {
    if (!(await readMounts()).has(this.mountKey(relPath))) return;
    await run("sync", ["-f", "--", join(this.root, relPath)]);
  }

  private async deviceOf(path: string): Promise<string> {
    const mount = (await readMounts()).get(path);
    if (mount === undefined || !mount.source.startsWith("/dev/loop")) {
      throw new PolydevError("internal", `${path} is not mounted from a loop device`);
    }
    return mount.source;
  }

  private mountKey(relPath: string): string {
    return join(this.resolvedRoot, relPath);
  }

  private isVolume(relPath: string): Promise<boolean> {
    return exists(this.volumeFile(relPath));
  }

  private volumeFile(relPath: string): string {
    // "+" is outside the relative-path alphabet, so the mapping is one to one.
    return join(this.root, VOLUMES_DIR, `${relPath.replaceAll("/", "+")}.img`);
  }

  private tempPath(): string {
    return join(this.root, TEMP_DIR, randomBytes(8).toString("hex"));
  }

  /** Creates the parents of `relPath`; the pool's top-level directory among them is root-only. */
  private async makeParents(relPath: string): Promise<void> {
    const parts = relPath.split("/");
    if (parts.length < 2) return;
    const top = join(this.root, parts[0] ?? "");
    await mkdir(top, { recursive: true, mode: 0o700 });
    await chmod(top, 0o700);
    await mkdir(join(this.root, ...parts.slice(0, -1)), { recursive: true, mode: 0o700 });
  }

  /** Serialises operations per path (sorted, so two clones in opposite directions cannot deadlock). */
  private async locked<T>(keys: readonly string[], work: () => Promise<T>): Promise<T> {
    await this.open();
    const sorted = [...new Set(keys)].sort();
    const previous = sorted.map((key) => this.locks.get(key) ?? Promise.resolve());
    let release = (): void => undefined;
    const mine = new Promise<void>((resolvePromise) => {
      release = resolvePromise;
    });
    for (const key of sorted) this.locks.set(key, mine);
    try {
      await Promise.all(previous);
      return await work();
    } finally {
      release();
      for (const key of sorted) if (this.locks.get(key) === mine) this.locks.delete(key);
    }
  }
}

function checkRelPath(relPath: string): void {
  if (
    !RELATIVE_PATH.test(relPath) ||
    relPath.split("/").some((part) => part === "." || part === ".." || part.startsWith(".")) ||
    relPath.length > 512
  ) {
    throw new PolydevError(
      "invalid_request",
      `storage path ${JSON.stringify(relPath)} must be relative, made of [a-z0-9._-] parts separated by "/", none starting with "."`,
    );
  }
}

function checkVolumeSize(limitBytes: number): void {
  if (!Number.isSafeInteger(limitBytes) || limitBytes < MIN_VOLUME_BYTES) {
    throw new PolydevError(
      "invalid_request",
      `a size limit must be a whole number of bytes, at least ${MIN_VOLUME_BYTES}`,
    );
  }
}

/** ext4's journal: 1/64 of the volume, 4 to 64 MiB (enough for package installs, little overhead). */
function journalMb(limitBytes: number): number {
  return Math.min(64, Math.max(4, Math.floor(limitBytes / 64 / 1024 / 1024)));
}

function roundDown(bytes: number): number {
  return Math.floor(bytes / BLOCK) * BLOCK;
}

async function defaultPoolSize(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return Math.max(MIN_POOL_BYTES, Math.floor(fs.bavail * fs.bsize * 0.8));
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
}

interface MountEntry {
  source: string;
  fsType: string;
}

/** Mount points of this mount namespace, from /proc/self/mountinfo (octal escapes decoded). */
async function readMounts(): Promise<Map<string, MountEntry>> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const mounts = new Map<string, MountEntry>();
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    const mountPoint = left.split(" ")[4];
    const [fsType, source] = right.split(" ");
    if (mountPoint === undefined || fsType === undefined || source === undefined) continue;
    mounts.set(unescapeMountField(mountPoint), { source: unescapeMountField(source), fsType });
  }
  return mounts;
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Whether a loop device is backed by `file` (the kernel's own record, not a guess from names). */
async function backedBy(device: string, file: string): Promise<boolean> {
  const name = device.replace(/^\/dev\//, "");
  if (!/^loop[0-9]+$/.test(name)) return false;
  const backing = await readFile(`/sys/block/${name}/loop/backing_file`, "utf8").catch(() => "");
  return backing.trim() === (await realpath(file));
}

/**
 * Unmounts, retrying briefly on EBUSY: a loop device below is released asynchronously after the
 * mount above it goes, so the pool may be busy for a moment after its last volume is unmounted.
 */
async function unmount(path: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run("umount", ["--", path]);
      return;
    } catch (error) {
      if (attempt >= 50 || !String((error as Error).message).includes("busy")) throw error;
      await new Promise((resolvePromise) => setTimeout(resolvePromise, 100));
    }
  }
}

/** Makes a rename in `dir` durable: a disk a sandbox has written to must not vanish in a crash. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await openFile(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A reflink copy (FICLONE): constant time, shared extents; never falls back to a byte copy. */
async function reflink(from: string, to: string): Promise<void> {
  try {
    await copyFile(from, to, constants.COPYFILE_FICLONE_FORCE);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EOPNOTSUPP" || code === "ENOTSUP" || code === "EXDEV") {
      throw new PolydevError("feature_unavailable", "the storage pool cannot make reflink copies here", {
        cause: error,
      });
    }
    throw error;
  }
}

/** Grows an unmounted ext4 image file to `sizeBytes`: checked first, as resize2fs insists. */
async function resizeOffline(file: string, sizeBytes: number): Promise<void> {
  await truncate(file, sizeBytes);
  // e2fsck -p: 0 is clean, 1 is "errors corrected"; both leave a file system resize2fs accepts.
  await run("e2fsck", ["-f", "-p", "--", file], [0, 1]);
  await run("resize2fs", ["--", file]);
}

/**
 * Mounts an image file. When a loop device is still attached to it (its file system is alive in
 * another mount namespace: a process that unshared its mounts while it was mounted, or a
 * sandbox), that device is mounted again, which shares the live file system; a second loop
 * device would make a second, independent instance of the same file system, and the two would
 * overwrite each other.
 */
async function mountImage(
  fsType: "xfs" | "ext4",
  file: string,
  target: string,
  /** "fresh": the file was made just now, so nothing is attached to it; or the loops listed already. */
  loops?: "fresh" | Map<string, string>,
): Promise<void> {
  const device = loops === "fresh" ? undefined : await attachedLoop(file, loops);
  if (device === undefined)
    await run("mount", ["-t", fsType, "-o", `loop,${MOUNT_OPTIONS}`, "--", file, target]);
  else await run("mount", ["-t", fsType, "-o", MOUNT_OPTIONS, "--", device, target]);
}

/**
 * Loop devices attached now, by backing file (the kernel's record, listed by losetup). A host
 * with a thousand disks has a thousand loop devices: read one by one from sysfs through Node's
 * thread pool that took 120-180 ms, losetup lists them in about 15 ms.
 */
async function attachedLoops(): Promise<Map<string, string>> {
  const out = await run("losetup", ["--list", "--json", "--output", "NAME,BACK-FILE"]);
  const loops = new Map<string, string>();
  // No loop device at all: losetup prints nothing.
  if (out.trim() === "") return loops;
  const listed = JSON.parse(out) as { loopdevices?: { name?: unknown; "back-file"?: unknown }[] };
  for (const loop of listed.loopdevices ?? []) {
    // A deleted backing file reads "<path> (deleted)" and so matches no file of the pool.
    if (typeof loop.name === "string" && typeof loop["back-file"] === "string")
      loops.set(loop["back-file"], loop.name);
  }
  return loops;
}

/** The loop device attached to `file`, if any. */
async function attachedLoop(file: string, loops?: Map<string, string>): Promise<string | undefined> {
  return (loops ?? (await attachedLoops())).get(await realpath(file));
}

/** Whether no loop device is attached to `file` any more (released asynchronously after the last unmount). */
async function loopReleased(file: string): Promise<boolean> {
  for (let attempt = 0; attempt < 50; attempt++) {
    if ((await attachedLoop(file)) === undefined) return true;
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 100));
  }
  return false;
}

/** Bytes (allocated blocks) and inodes below `root`, each hard-linked inode counted once; no symlink followed. */
async function treeUsage(root: string): Promise<StorageUsage> {
  const seen = new Set<string>();
  let bytes = 0;
  const pending = [root];
  for (let path = pending.pop(); path !== undefined; path = pending.pop()) {
    const info = await lstat(path);
    const key = `${info.dev}:${info.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      bytes += info.blocks * 512;
    }
    if (info.isDirectory()) for (const name of await readdir(path)) pending.push(join(path, name));
  }
  return { bytes, inodes: seen.size };
}

/** Runs a system tool with a fixed environment; a failure becomes an `internal` PolydevError carrying its stderr. */
function run(
  command: string,
  args: readonly string[],
  okExitCodes: readonly number[] = [0],
): Promise<string> {
  return new Promise((resolvePromise, rejectPromise) => {
    execFile(
      command,
      args,
      { encoding: "utf8", env: TOOL_ENV, cwd: "/", timeout: 10 * 60_000, maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null || okExitCodes.includes(Number(error.code))) {
          resolvePromise(stdout);
          return;
        }
        const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
        rejectPromise(
          new PolydevError(
            missing ? "driver_unavailable" : "internal",
            missing
              ? `${command} is missing: install xfsprogs, e2fsprogs and util-linux (scripts/ensure.sh does)`
              : `storage pool: ${command} failed: ${stderr.trim() || error.message}`,
            { cause: error, details: { command, args } },
          ),
        );
      },
    );
  });
}
