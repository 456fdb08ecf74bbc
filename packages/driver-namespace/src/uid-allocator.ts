/**
 * Hands every sandbox its own unprivileged host uid (and gid of the same number), so sandboxes
 * cannot signal, ptrace or read each other's processes even if they escaped their namespaces.
 *
 * Uids are host-wide, not per driver: two servers on one host (or two drivers of one server)
 * drawing from the same range must never hand out the same uid. A registry directory outside
 * any data directory holds one file per uid in use, named by the uid and naming its owner (the
 * driver's root directory and the sandbox id). A claim is made by link(2)ing a complete file to
 * that name, which fails if the name exists: atomic across threads and processes, and a reader
 * never sees a half-written claim.
 *
 * A crash must not leak uids forever, so a claim whose owner is gone is reclaimed when an
 * allocation meets it: gone means the owner's root directory or sandbox directory no longer
 * exists, or the sandbox directory now belongs to another uid (its meta.json says so). That
 * test is sound because the driver creates the sandbox directory before claiming a uid and
 * releases the uid before deleting the directory: a live owner's claim always names an existing
 * directory. Reclaiming (delete, then claim anew) runs under a host-wide lock so that two
 * reclaimers never delete each other's fresh claims.
 *
 * Allocation stays O(1) in the common case: a cursor remembers where the last one ended, so a
 * create tries one link(2), not a scan of the registry. Uids are handed out round-robin over the
 * range; a released uid is reused only after the cursor wraps.
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { PolydevError } from "@polydev/core";
import { HostLock } from "./host-lock.js";
import { isSandboxId } from "./sandbox-files.js";

/** Where claims live unless configured (root-only, mode 700). */
export const DEFAULT_HOST_UID_REGISTRY = "/var/lib/polydev/host-uids";

const CLAIM_VERSION = 1;
/** How long a reclaim waits for the host lock before treating the claim as in use. */
const LOCK_TIMEOUT_MS = 2_000;
const TEMPORARY_PREFIX = ".claim-";

interface Claim {
  v: number;
  rootDir: string;
  sandboxId: string;
  pid: number;
}

export class UidAllocator {
  private readonly rootDir: string;
  private readonly lock: HostLock;
  /** Next offset above the base to try (1-based). */
  private cursor = 1;
  /** Uids this instance holds, by sandbox id. */
  private readonly held = new Map<number, string>();
  private registryReady = false;

  constructor(
    private readonly options: {
      registryDir: string;
      /** The driver's root directory: claims name it as their owner. */
      rootDir: string;
      base: number;
      range: number;
      /**
       * Distance between the uids handed out (default 1): an image sandbox claims the first uid
       * of a block of `stride` (its user namespace maps 0..stride-1 onto the block).
       */
      stride?: number;
    },
  ) {
    this.rootDir = resolve(options.rootDir);
    this.lock = new HostLock(`host-uids:${resolve(options.registryDir)}`);
  }

  /**
   * Claims a free uid for `sandboxId`, whose directory under the root must already exist (a
   * claim naming a missing directory counts as abandoned).
   */
  async allocate(sandboxId: string): Promise<number> {
    this.prepareRegistry();
    const claim: Claim = { v: CLAIM_VERSION, rootDir: this.rootDir, sandboxId, pid: process.pid };
    const temporary = join(
      this.options.registryDir,
      `${TEMPORARY_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`,
    );
    writeFileSync(temporary, JSON.stringify(claim), { mode: 0o600, flag: "wx" });
    try {
      for (let tried = 0; tried < this.options.range; tried++) {
        const offset = this.cursor;
        this.cursor = (offset % this.options.range) + 1;
        const uid = this.options.base + offset * (this.options.stride ?? 1);
        if (this.held.has(uid)) continue;
        if (this.tryClaim(temporary, uid) || (await this.reclaimIfAbandoned(temporary, uid))) {
          this.held.set(uid, sandboxId);
          return uid;
        }
      }
    } finally {
      unlinkQuietly(temporary);
    }
    throw new PolydevError(
      "limit_exceeded",
      `all ${this.options.range} sandbox uids above ${this.options.base} are in use on this host`,
    );
  }

  /** Gives `uid` back, if the claim on it is still this sandbox's (a no-op otherwise). */
  async release(uid: number, sandboxId: string): Promise<void> {
    if (this.held.get(uid) === sandboxId) this.held.delete(uid);
    const claim = this.readClaim(uid);
    if (claim?.claim?.rootDir === this.rootDir && claim.claim.sandboxId === sandboxId) {
      unlinkQuietly(this.claimFile(uid));
    }
  }

  /** The uid this instance allocated for `sandboxId`, if any (for a create that wrote no meta.json). */
  heldBy(sandboxId: string): number | undefined {
    for (const [uid, holder] of this.held) if (holder === sandboxId) return uid;
    return undefined;
  }

  private claimFile(uid: number): string {
    return join(this.options.registryDir, String(uid));
  }

  private tryClaim(temporary: string, uid: number): boolean {
    try {
      linkSync(temporary, this.claimFile(uid));
      return true;
    } catch (error) {
      if (errorCode(error) === "EEXIST") return false;
      throw error;
    }
  }

  /** Takes over `uid` if its claim was abandoned; false if it is in use (or the lock is busy). */
  private async reclaimIfAbandoned(temporary: string, uid: number): Promise<boolean> {
    const seen = this.readClaim(uid);
    // Gone meanwhile (released): simply try again.
    if (seen === undefined) return this.tryClaim(temporary, uid);
    if (isLive(seen.claim, uid)) return false;
    const outcome = await this.lock.with(LOCK_TIMEOUT_MS, () => {
      // Judged again under the lock: another reclaimer may have been first.
      const current = this.readClaim(uid);
      if (current === undefined) return this.tryClaim(temporary, uid);
      if (isLive(current.claim, uid)) return false;
      // Moved aside rather than unlinked, so that what is deleted is provably the file judged.
      const aside = `${temporary}.reclaimed`;
      renameSync(this.claimFile(uid), aside);
      if (lstatSync(aside).ino !== current.ino) {
        // Cannot happen while every reclaimer holds this lock; put it back rather than guess.
        try {
          linkSync(aside, this.claimFile(uid));
        } finally {
          unlinkQuietly(aside);
        }
        return false;
      }
      unlinkQuietly(aside);
      return this.tryClaim(temporary, uid);
    });
    return outcome.locked && outcome.value;
  }

  /** The claim on `uid` (undefined when there is none; `claim` undefined when unreadable). */
  private readClaim(uid: number): { claim: Claim | undefined; ino: number } | undefined {
    let fd: number;
    try {
      fd = openSync(this.claimFile(uid), "r");
    } catch (error) {
      if (errorCode(error) === "ENOENT") return undefined;
      throw error;
    }
    try {
      const { ino } = fstatSync(fd);
      let claim: Claim | undefined;
      try {
        claim = parseClaim(JSON.parse(readFileSync(fd, "utf8")));
      } catch {
        claim = undefined;
      }
      return { claim, ino };
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Creates the registry (root-only) once per instance, and clears temporary files that a crash
   * left between writing a claim and linking it. One readdir per driver start, never per create.
   */
  private prepareRegistry(): void {
    if (this.registryReady) return;
    const dir = this.options.registryDir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    for (const name of readdirSync(dir)) {
      const pid = Number(/^\.claim-(\d+)-/.exec(name)?.[1]);
      if (Number.isInteger(pid) && !processExists(pid)) unlinkQuietly(join(dir, name));
    }
    this.registryReady = true;
  }
}

function parseClaim(value: unknown): Claim | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const claim: Partial<Record<keyof Claim, unknown>> = value;
  if (typeof claim.v !== "number") return undefined;
  return {
    v: claim.v,
    rootDir: typeof claim.rootDir === "string" ? claim.rootDir : "",
    sandboxId: typeof claim.sandboxId === "string" ? claim.sandboxId : "",
    pid: typeof claim.pid === "number" ? claim.pid : 0,
  };
}

/**
 * Whether the owner named by a claim still exists. A claim of a version this code does not
 * know is left alone (a newer Polydev wrote it); an unreadable one can only be debris.
 */
function isLive(claim: Claim | undefined, uid: number): boolean {
  if (claim === undefined) return false;
  if (claim.v !== CLAIM_VERSION) return true;
  if (!isAbsolute(claim.rootDir) || !isSandboxId(claim.sandboxId)) return false;
  const sandboxDir = join(claim.rootDir, claim.sandboxId);
  if (!isDirectory(claim.rootDir) || !isDirectory(sandboxDir)) return false;
  // The id was used again after a crash: the directory belongs to that sandbox's uid now.
  try {
    const meta: unknown = JSON.parse(readFileSync(join(sandboxDir, "meta.json"), "utf8"));
    if (typeof meta === "object" && meta !== null && "hostUid" in meta && typeof meta.hostUid === "number") {
      return meta.hostUid === uid;
    }
  } catch {
    // No meta.json yet: the sandbox is being created.
  }
  return true;
}

function isDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === "EPERM";
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function errorCode(error: unknown): unknown {
  return error instanceof Error && "code" in error ? error.code : undefined;
}
