/**
 * Each sandbox's /etc: a read-only copy of the host's, made by the driver, instead of the host's
 * own /etc with single files mounted over it. A mount over a single host file detaches the
 * moment the host replaces that file by rename (apt-get, groupadd, an editor's save): running
 * sandboxes then saw the host's /etc/group and lost the mask over /etc/gshadow. A copy is
 * never touched once made, so there is nothing to detach.
 *
 * The copy holds only what the sandbox user could read on the host anyway: regular files that
 * are world-readable, in directories that are world-readable and -searchable, symlinks as
 * symlinks; no sockets, fifos or devices; never the known secret files even if a host made them
 * readable. Polydev's own passwd, group, hosts, hostname and resolv.conf are written in.
 *
 * Copies are content-addressed: named by a hash of what a walk of the host's /etc saw (names,
 * modes, sizes, inode numbers, change times) plus the generated files, one per network mode
 * (only resolv.conf differs; the second is hard links to the first). A create uses the current
 * copy; a walk at most every 10 s, in the background after a create, notices a changed
 * host /etc and builds a new copy into a new directory for later creates. Copies no sandbox
 * uses any more are deleted by `collect`. A copy a few seconds behind the host is harmless: it
 * only ever holds what was world-readable when it was taken.
 *
 * Where: bubblewrap re-opens a directory it binds by descriptor through its path, as the
 * sandbox's uid, so copies cannot live in the root-only data directory. They go in a store under
 * a root-owned base the sandbox uids can traverse but not list (the exec servers' base), shared
 * by every driver on the host: one copy per state of the host's /etc, however many servers and
 * data directories there are. Each driver root marks the copies it uses with a reference file
 * (`<copy>.ref-<hash of the root>`, naming the root); a copy with no reference from a root that
 * still exists is deleted by whichever driver collects next. Deleting renames the copy aside
 * first and looks at the references again, so a driver that adopts it at that moment (it writes
 * its reference, then checks that the copy exists, and builds it again if not) is never left
 * with a half-deleted one.
 *
 * The file system work is synchronous (a few microseconds a call, where a thread-pool round
 * trip costs a hundred times more on a busy host) in batches, yielding to the event loop in
 * between so that a rebuild never stalls requests for long.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { NetworkMode } from "@polydev/core";
import { NETWORK_MODES } from "@polydev/core";
import { SANDBOX_HOME, SANDBOX_UID } from "./launcher.js";

/** Host files and directories (relative to /etc) never copied, whatever their modes. */
const SECRET_PATHS = new Set([
  "shadow",
  "shadow-",
  "gshadow",
  "gshadow-",
  "sudoers",
  "sudoers.d",
  "security/opasswd",
  "ssh",
  "ssl/private",
]);
/** A host file bigger than this is not copied (nothing in a sane /etc comes close). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** How often, at most, a create triggers a walk of the host's /etc to look for changes. */
const DEFAULT_RECHECK_MS = 10_000;
/** File system calls between two yields to the event loop. */
const BATCH = 100;
const NETWORKS: readonly NetworkMode[] = NETWORK_MODES;
const SNAPSHOT_NAME = new RegExp(`^[0-9a-f]{16}-(${NETWORK_MODES.join("|")})$`);
const REF_MARK = ".ref-";

interface Entry {
  /** Relative to /etc, "/"-separated. */
  path: string;
  kind: "dir" | "file" | "link";
  mode: number;
}

interface HostWalk {
  entries: Entry[];
  fingerprint: string;
}

export function generatedEtcFiles(network: NetworkMode): [string, string][] {
  const passwd = [
    "root:x:0:0:root:/root:/usr/sbin/nologin",
    `user:x:${SANDBOX_UID}:${SANDBOX_UID}:Polydev sandbox user:${SANDBOX_HOME}:/bin/bash`,
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    "",
  ].join("\n");
  const group = ["root:x:0:", `user:x:${SANDBOX_UID}:`, "nogroup:x:65534:", ""].join("\n");
  // slirp4netns answers DNS on 10.0.2.3; the host's resolver address may be on its loopback.
  // An allow-list sandbox's DNS goes to the server whatever address it names (egress-setup.c
  // intercepts all of port 53): the same address keeps the two modes alike.
  const resolv = network === "none" ? "" : "nameserver 10.0.2.3\n";
  return [
    ["passwd", passwd],
    ["group", group],
    ["hosts", "127.0.0.1 localhost sandbox\n::1 localhost\n"],
    ["hostname", "sandbox\n"],
    ["resolv.conf", resolv],
  ];
}

export class EtcSnapshots {
  /** The snapshot each network's creates use now, once known. */
  private readonly current = new Map<NetworkMode, Promise<string>>();
  /** The same, once built (what `collect` must keep). */
  private readonly currentDirs = new Map<NetworkMode, string>();
  /** Snapshots being adopted, not yet current: `collect` must keep them too. */
  private readonly building = new Set<string>();
  /** This root's reference file name suffix. */
  private readonly refSuffix: string;
  private walked: Promise<HostWalk> | undefined;
  private lastCheck = 0;
  private checking = false;
  private readonly store: string;
  private readonly rootDir: string;
  private readonly hostEtc: string;
  private readonly recheckMs: number;
  private readonly onError: (error: unknown) => void;

  constructor(options: {
    /** The host-wide store (root-owned, mode 711, under the exec servers' base). */
    store: string;
    /** The driver's root: what its references name. */
    rootDir: string;
    /** Hears about a background recheck that failed (creates keep the snapshot they have). */
    onError: (error: unknown) => void;
    /** What to copy (default /etc). */
    hostEtc?: string;
    /** How often, at most, `recheckSoon` walks it again (default 10 s). */
    recheckMs?: number;
  }) {
    this.store = options.store;
    this.rootDir = options.rootDir;
    this.onError = options.onError;
    this.hostEtc = options.hostEtc ?? "/etc";
    this.recheckMs = options.recheckMs ?? DEFAULT_RECHECK_MS;
    this.refSuffix = `${REF_MARK}${createHash("sha256").update(this.rootDir).digest("hex").slice(0, 16)}`;
  }

  /** The directory to bind as `network`'s /etc; the first call per network builds it. */
  forNetwork(network: NetworkMode): Promise<string> {
    let snapshot = this.current.get(network);
    if (snapshot === undefined) {
      this.walked ??= this.walk();
      const walked = this.walked;
      const made = walked.then((walk) => this.adopt(walk, network));
      snapshot = made.then((dir) => {
        if (this.current.get(network) === snapshot) this.currentDirs.set(network, dir);
        this.building.delete(dir);
        return dir;
      });
      this.current.set(network, snapshot);
      // A failed build is retried by the next create rather than remembered.
      snapshot.catch(() => {
        if (this.current.get(network) === snapshot) this.current.delete(network);
        if (this.walked === walked) this.walked = undefined;
      });
    }
    return snapshot;
  }

  /** Whether creates get `dir` now. */
  isCurrent(dir: string): boolean {
    return [...this.currentDirs.values()].includes(dir);
  }

  /**
   * Looks for changes to the host's /etc in the background (at most every `recheckMs`) and, if
   * there are any, builds new snapshots for later creates. `onRebuilt` hears when that happened
   * (the old snapshots may then be collected).
   */
  recheckSoon(onRebuilt: () => void): void {
    if (this.checking || Date.now() - this.lastCheck < this.recheckMs) return;
    this.checking = true;
    this.lastCheck = Date.now();
    this.recheck()
      .then((rebuilt) => {
        if (rebuilt) onRebuilt();
      })
      .catch(this.onError)
      .finally(() => {
        this.checking = false;
        this.lastCheck = Date.now();
      });
  }

  /**
   * Drops this root's reference to every snapshot it no longer uses (neither current, being
   * adopted, nor `inUse` by one of its sandboxes), then deletes every snapshot in the store
   * that no existing root references, and debris of crashed builds. Sound only while nothing
   * else creates sandboxes on this root: one server per data directory.
   */
  async collect(inUse: (dir: string) => boolean): Promise<void> {
    for (const name of readdirQuietly(this.store)) {
      const dir = join(this.store, name);
      const debris = /^\.(build|trash)-(\d+)-/.exec(name);
      if (debris) {
        const pid = Number(debris[2]);
        if (pid !== process.pid && !processExists(pid)) await removeTree(dir);
        continue;
      }
      if (!SNAPSHOT_NAME.test(name)) continue;
      // Judged right before each removal: an adoption may have started during the previous one.
      if (!inUse(dir) && !this.building.has(dir) && !this.isCurrent(dir))
        unlinkQuietly(`${dir}${this.refSuffix}`);
      if (this.liveRefs(name) > 0) continue;
      const aside = join(this.store, `.trash-${process.pid}-${randomBytes(6).toString("hex")}`);
      try {
        renameSync(dir, aside);
      } catch {
        continue;
      }
      if (this.liveRefs(name) > 0) {
        // Adopted meanwhile: back it goes, unless its adopter already built it again.
        try {
          renameSync(aside, dir);
          continue;
        } catch {
          // Rebuilt: this one is surplus.
        }
      }
      await removeTree(aside);
    }
  }

  /** How many existing roots reference snapshot `name`; drops references of vanished roots. */
  private liveRefs(name: string): number {
    let live = 0;
    for (const entry of readdirQuietly(this.store)) {
      if (!entry.startsWith(`${name}${REF_MARK}`)) continue;
      const ref = join(this.store, entry);
      let root: string | undefined;
      try {
        root = readFileSync(ref, "utf8");
      } catch {
        continue;
      }
      if (root !== "" && existsSync(root)) live++;
      else unlinkQuietly(ref);
    }
    return live;
  }

  /**
   * Makes `walk`'s snapshot for `network` this root's: references it first, then builds it
   * unless it exists (see the top of the file for why in that order).
   */
  private async adopt(walk: HostWalk, network: NetworkMode): Promise<string> {
    const final = join(this.store, `${walk.fingerprint}-${network}`);
    // Kept from `collect` from now until it is current (the caller's job to clear).
    this.building.add(final);
    mkdirSync(this.store, { recursive: true, mode: 0o711 });
    chmodSync(this.store, 0o711);
    writeFileSync(`${final}${this.refSuffix}`, this.rootDir, { mode: 0o600 });
    if (!existsSync(final)) await this.build(walk, network, final);
    return final;
  }

  private async recheck(): Promise<boolean> {
    const previous = this.walked === undefined ? undefined : await this.walked.catch(() => undefined);
    const walk = await this.walk();
    if (previous !== undefined && previous.fingerprint === walk.fingerprint) return false;
    const networks = NETWORKS.filter((network) => this.current.has(network));
    // Built before anything switches: creates keep the old snapshot until the new one is whole.
    const built: string[] = [];
    for (const network of networks) built.push(await this.adopt(walk, network));
    this.walked = Promise.resolve(walk);
    networks.forEach((network, index) => {
      const dir = built[index];
      if (dir === undefined) return;
      this.current.set(network, Promise.resolve(dir));
      this.currentDirs.set(network, dir);
      this.building.delete(dir);
    });
    return true;
  }

  /** Walks the host's /etc: what a snapshot would hold, and a fingerprint of it. */
  private async walk(): Promise<HostWalk> {
    const entries: Entry[] = [];
    const hash = createHash("sha256");
    for (const network of NETWORKS) {
      for (const [name, text] of generatedEtcFiles(network)) hash.update(`${network}\0${name}\0${text}\0`);
    }
    let calls = 0;
    const pending = [""];
    for (let relative = pending.shift(); relative !== undefined; relative = pending.shift()) {
      let names: string[];
      try {
        names = readdirSync(join(this.hostEtc, relative)).sort();
      } catch (error) {
        // Removed during the walk: nothing in it (the top must exist).
        if (relative === "") throw error;
        continue;
      }
      for (const name of names) {
        if (++calls % BATCH === 0) await yieldToEventLoop();
        const path = relative === "" ? name : `${relative}/${name}`;
        if (SECRET_PATHS.has(path)) continue;
        let stat: ReturnType<typeof lstatBig>;
        try {
          stat = lstatBig(join(this.hostEtc, path));
        } catch {
          continue;
        }
        const mode = Number(stat.mode & 0o7777n);
        // Anything that changes what a copy would hold changes one of these.
        hash.update(`${path}\0${stat.mode}\0${stat.size}\0${stat.ino}\0${stat.ctimeNs}\0${stat.mtimeNs}\0`);
        if (stat.isDirectory()) {
          if ((mode & 0o005) !== 0o005) continue;
          entries.push({ path, kind: "dir", mode });
          pending.push(path);
        } else if (stat.isFile()) {
          if ((mode & 0o004) === 0 || stat.size > MAX_FILE_BYTES) continue;
          entries.push({ path, kind: "file", mode });
        } else if (stat.isSymbolicLink()) {
          entries.push({ path, kind: "link", mode });
        }
      }
    }
    // Breadth first, so parents come before their children (the build relies on it).
    return { entries, fingerprint: hash.digest("hex").slice(0, 16) };
  }

  /** Makes `final`, the snapshot of `walk` for `network`, whole under a temporary name first. */
  private async build(walk: HostWalk, network: NetworkMode, final: string): Promise<void> {
    // The other network's copy of the same host state, if made: link its files, copy nothing.
    const sibling = NETWORKS.map((other) => join(this.store, `${walk.fingerprint}-${other}`)).find(
      (dir) => dir !== final && existsSync(dir),
    );
    const temporary = join(this.store, `.build-${process.pid}-${randomBytes(6).toString("hex")}`);
    try {
      mkdirSync(temporary, { mode: 0o755 });
      chmodSync(temporary, 0o755);
      let calls = 0;
      for (const entry of walk.entries) {
        if (++calls % BATCH === 0) await yieldToEventLoop();
        const target = join(temporary, entry.path);
        try {
          if (entry.kind === "dir") {
            mkdirSync(target);
            chmodSync(target, entry.mode & 0o755);
          } else if (entry.kind === "link") {
            symlinkSync(readlinkSync(join(this.hostEtc, entry.path)), target);
          } else if (sibling !== undefined && existsSync(join(sibling, entry.path))) {
            linkSync(join(sibling, entry.path), target);
          } else {
            copyFileSync(join(this.hostEtc, entry.path), target);
            // Set-id bits mean nothing in a sandbox and have no business in a root-owned copy.
            chmodSync(target, entry.mode & 0o755);
          }
        } catch (error) {
          // Gone or replaced since the walk (a package being installed): the next walk sees it.
          if (!isVanished(error)) throw error;
        }
      }
      for (const [name, text] of generatedEtcFiles(network)) {
        const target = join(temporary, name);
        try {
          unlinkSync(target);
        } catch {
          // Not on the host.
        }
        writeFileSync(target, text, { mode: 0o644 });
      }
      try {
        renameSync(temporary, final);
      } catch (error) {
        // Another driver built the same snapshot first: use that one.
        if (!existsSync(final)) throw error;
      }
    } finally {
      await removeTree(temporary);
    }
  }
}

function lstatBig(path: string) {
  return lstatSync(path, { bigint: true });
}

function readdirQuietly(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** rm -rf, yielding now and then (a snapshot holds about a thousand entries). */
async function removeTree(dir: string): Promise<void> {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(dir);
  } catch {
    return;
  }
  if (!stat?.isDirectory()) {
    rmSync(dir, { force: true });
    return;
  }
  for (const name of readdirQuietly(dir)) {
    const child = join(dir, name);
    if (lstatSync(child, { throwIfNoEntry: false })?.isDirectory()) await removeTree(child);
    else rmSync(child, { force: true });
  }
  await yieldToEventLoop();
  rmSync(dir, { recursive: true, force: true });
}

function isVanished(error: unknown): boolean {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  return code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR" || code === "EINVAL";
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error instanceof Error && "code" in error && error.code === "EPERM";
  }
}
