/**
 * The embedded default driver: each sandbox is a bubblewrap process tree in fresh user, pid,
 * mount, ipc, uts, cgroup and network namespaces, running as its own unprivileged host uid,
 * held in cgroups. No process per sandbox beyond bubblewrap and its init (the exec server): the
 * agent runs at the host edge and asks the init for every process it starts.
 */

import type { ChildProcess } from "node:child_process";
import {
  accessSync,
  chmodSync,
  chownSync,
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  writeFileSync,
} from "node:fs";
import { open, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createInProcessAgent } from "@polydev/agent";
import type {
  AgentConnection,
  DriverInfo,
  ObservedSandbox,
  SandboxDriver,
  SandboxHandle,
  SandboxLimits,
  SandboxSpec,
  SandboxStats,
} from "@polydev/core";
import { NETWORK_MODES, PolydevError } from "@polydev/core";
import { deniedDestinations, egressAvailable, SLIRP4NETNS, slirpReady, spawnSlirp } from "@polydev/egress";
import { bwrapArgs, EXEC_SERVER_IN_SANDBOX, FIRST_DATA_FD } from "./bwrap-args.js";
import { BwrapStarters } from "./bwrap-starters.js";
import { killQuietly, until } from "./cgroup-files.js";
import { favorDynamicCgroupChanges } from "./cgroup-tuning.js";
import type { Cgroups } from "./cgroups.js";
import { detectCgroups } from "./cgroups.js";
import { DiskSpares } from "./disk-spares.js";
import { allowlistAvailable, NFT, setupAllowlist } from "./egress-allowlist.js";
import { denyRoutes } from "./egress-deny.js";
import { EtcSnapshots } from "./etc-snapshots.js";
import { startOverExecServer } from "./exec-client.js";
import { ExecConnections } from "./exec-connections.js";
import { ExecDirs } from "./exec-dirs.js";
import { runHelper } from "./helper-output.js";
import type { DiskStorage, ImageMeta } from "./image-launch.js";
import {
  changesLimit,
  diskPath,
  imageMeta,
  imageStarterArgs,
  prepareDisk,
  storageRelative,
  UIDS_PER_SANDBOX,
} from "./image-launch.js";
import { namespaceLauncher, SANDBOX_HOME } from "./launcher.js";
import { isReaped, isSameProcess, killIfSame, startTimeOf } from "./process-info.js";
import { waitUntilReady } from "./readiness.js";
import type { SandboxMeta } from "./sandbox-files.js";
import { assertSandboxId, SandboxFiles } from "./sandbox-files.js";
import { DEFAULT_HOST_UID_REGISTRY, UidAllocator } from "./uid-allocator.js";

export interface DriverLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface NamespaceDriverOptions {
  /**
   * The name a server knows it by (default "namespace"): a second instance with other settings
   * (its own rootDir) can run beside the first under another name.
   */
  name?: string;
  /** Host directory for per-sandbox state; created with mode 700. */
  rootDir: string;
  /** Structured log for lifecycle events (default: silent). */
  log?: DriverLog;
  /** Sandboxes get host uids from `hostUidBase + 1` up; each its own (default 200000). */
  hostUidBase?: number;
  /**
   * Where the uids in use are claimed, one file each, host-wide: every driver and server on
   * the host that shares this directory (and a uid range) never hands out a uid twice
   * (default /var/lib/polydev/host-uids). Keep it outside any data directory.
   */
  hostUidRegistryDir?: string;
  /** How many host uids above the base belong to sandboxes (default 1000000). */
  hostUidCount?: number;
  /** Parent cgroup of all sandboxes, under every controller (default "polydev"). */
  cgroupName?: string;
  /** How long bubblewrap (and slirp4netns) may take to report ready (default 10000). */
  startTimeoutMs?: number;
  /**
   * The compiled exec server (native/*.c, built by scripts/ensure.sh), which becomes each
   * sandbox's init and starts every process in it. Default: the package's
   * dist/polydev-exec-server. Without it the driver is unavailable (probe says how to build it).
   */
  execServerPath?: string;
  /** Where the exec servers' socket directories go (default /run/polydev-exec). */
  execSocketRoot?: string;
  /**
   * Remount the host's cgroup2 hierarchy with `favordynmods` (see cgroup-tuning.ts), which takes
   * ~12 ms off every create; a host-wide setting, logged when changed (default true).
   */
  tuneHostCgroups?: boolean;
  /**
   * The storage pool holding image layers and sandbox disks (see @polydev/images StoragePool).
   * Without it the driver runs only host-view sandboxes (no `image`, no root, no durable disks).
   */
  storage?: DiskStorage;
  /**
   * The read-only toolbox mounted at /opt/polydev in image sandboxes (Node and the agent CLIs),
   * or how to find it once it is built (undefined until then: sandboxes start without it).
   */
  toolboxDir?: string | (() => string | undefined);
  /**
   * Image sandboxes get blocks of 65,536 host uids from here up (default 2^31), up to
   * `imageUidBlocks` of them (default 16384): far above the host-view range.
   */
  imageUidBase?: number;
  imageUidBlocks?: number;
}

/** Where scripts/ensure.sh puts the compiled exec server (from src/ or dist/ alike). */
export const DEFAULT_EXEC_SERVER_PATH = fileURLToPath(
  new URL("../dist/polydev-exec-server", import.meta.url),
);
/** connect(2) refuses longer unix socket paths (the exec directories keep them far shorter). */
const MAX_SOCKET_PATH_BYTES = 107;

const MiB = 1024 * 1024;
const CONSOLE_TAIL_BYTES = 64 * 1024;
const HOME_USAGE_TIMEOUT_MS = 2_000;
const REQUIRED_TOOLS = [["/usr/bin/bwrap", "bubblewrap"]] as const;

/** What a create had got as far as, for cleaning up after a failure. */
interface StartProgress {
  bwrap: ChildProcess | undefined;
  initPid: number | undefined;
  /** The disk a create made or took (removed again if the create fails). */
  disk?: string | undefined;
}

const silentLog: DriverLog = { info: () => undefined, warn: () => undefined };

export class NamespaceDriver implements SandboxDriver {
  readonly name: string;
  private readonly files: SandboxFiles;
  private readonly cgroups: Cgroups;
  private readonly log: DriverLog;
  private readonly uids: UidAllocator;
  private readonly blocks: UidAllocator;
  private readonly storage: DiskStorage | undefined;
  private readonly diskSpares: DiskSpares | undefined;
  private sweptSpares = false;
  private readonly toolboxDir: () => string | undefined;
  private readonly etc: EtcSnapshots;
  /** /etc snapshots chosen by creates that have not written their meta.json yet. */
  private readonly etcPinned = new Map<string, number>();
  private etcCollecting: Promise<void> | undefined;
  private readonly startTimeoutMs: number;
  private readonly execServerPath: string;
  private readonly execDirs: ExecDirs;
  private readonly execConnections = new ExecConnections();
  private readonly bwrapStarters: BwrapStarters;
  /** What create wrote to meta.json and env.json, for sandboxes started by this instance. */
  private readonly startedHere = new Map<string, { meta: SandboxMeta; env: Record<string, string> }>();
  private readonly tuneHostCgroups: boolean;
  private tuned: Promise<void> | undefined;
  /** What each sandbox last said its home uses (see homeUsage). */
  private readonly lastHomeUsage = new Map<string, number>();
  /** Ids being created by this instance: not yet anything for a reconciler to judge. */
  private readonly creating = new Set<string>();

  constructor(options: NamespaceDriverOptions) {
    this.name = options.name ?? "namespace";
    if (!/^[a-z][a-z0-9-]{0,63}$/.test(this.name)) {
      throw new PolydevError(
        "invalid_request",
        `a driver's name is lowercase letters, digits and '-': "${this.name}"`,
      );
    }
    this.files = new SandboxFiles(options.rootDir);
    this.cgroups = detectCgroups(options.cgroupName ?? "polydev");
    this.log = options.log ?? silentLog;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.execDirs = new ExecDirs(options.rootDir, options.execSocketRoot);
    this.tuneHostCgroups = options.tuneHostCgroups ?? true;
    this.execServerPath = options.execServerPath ?? DEFAULT_EXEC_SERVER_PATH;
    this.bwrapStarters = new BwrapStarters(this.execServerPath);
    const hostUidBase = options.hostUidBase ?? 200_000;
    const hostUidCount = options.hostUidCount ?? 1_000_000;
    // 0 would be root, and (uid_t)-1 tells setresuid "leave unchanged", which would also be root.
    if (
      !Number.isInteger(hostUidBase) ||
      !Number.isInteger(hostUidCount) ||
      hostUidBase < 1000 ||
      hostUidCount < 1 ||
      hostUidBase + hostUidCount >= 0xffff_fffe
    ) {
      throw new PolydevError(
        "invalid_request",
        `hostUidBase ${hostUidBase} and hostUidCount ${hostUidCount} must name uids between 1001 and 4294967293`,
      );
    }
    this.uids = new UidAllocator({
      registryDir: options.hostUidRegistryDir ?? DEFAULT_HOST_UID_REGISTRY,
      rootDir: options.rootDir,
      base: hostUidBase,
      range: hostUidCount,
    });
    const imageUidBase = options.imageUidBase ?? 2 ** 31;
    const imageUidBlocks = options.imageUidBlocks ?? 16_384;
    if (
      !Number.isInteger(imageUidBase) ||
      !Number.isInteger(imageUidBlocks) ||
      imageUidBase < hostUidBase + hostUidCount ||
      imageUidBlocks < 1 ||
      imageUidBase + (imageUidBlocks + 1) * UIDS_PER_SANDBOX >= 0xffff_fffe
    ) {
      throw new PolydevError(
        "invalid_request",
        `imageUidBase ${imageUidBase} and imageUidBlocks ${imageUidBlocks} must name blocks of ${UIDS_PER_SANDBOX} uids above the host-view range and below 4294967294`,
      );
    }
    this.blocks = new UidAllocator({
      registryDir: `${options.hostUidRegistryDir ?? DEFAULT_HOST_UID_REGISTRY}-blocks`,
      rootDir: options.rootDir,
      base: imageUidBase - UIDS_PER_SANDBOX,
      range: imageUidBlocks,
      stride: UIDS_PER_SANDBOX,
    });
    this.storage = options.storage;
    this.diskSpares =
      options.storage === undefined
        ? undefined
        : new DiskSpares(options.storage, (error) =>
            this.log.warn({ err: error }, "could not make a spare disk"),
          );
    const toolbox = options.toolboxDir;
    this.toolboxDir = typeof toolbox === "function" ? toolbox : () => toolbox;
    const rootDir = resolve(options.rootDir);
    this.etc = new EtcSnapshots({
      store: join(this.execDirs.base, "etc"),
      rootDir,
      onError: (error) => this.log.warn({ err: error }, "could not refresh the sandboxes' copy of /etc"),
    });
  }

  async probe(signal?: AbortSignal): Promise<DriverInfo> {
    signal?.throwIfAborted();
    const missing: string[] = [];
    for (const [path, pkg] of REQUIRED_TOOLS) {
      if (!canExecute(path)) missing.push(`${path} (apt-get install ${pkg})`);
    }
    if (!canExecute(this.execServerPath)) missing.push(execServerMissing(this.execServerPath));
    if (process.getuid?.() !== 0) {
      missing.push("root: the driver gives each sandbox its own host uid and cgroup");
    }
    const maxUserNs = Number(
      (await readFile("/proc/sys/user/max_user_namespaces", "utf8").catch(() => "1")).trim(),
    );
    if (maxUserNs === 0) missing.push("user namespaces (sysctl -w user.max_user_namespaces=15000)");
    missing.push(...this.cgroups.missing());
    if (missing.length > 0) {
      throw new PolydevError("driver_unavailable", `the namespace driver needs: ${missing.join("; ")}`, {
        details: { missing },
      });
    }
    // The first create then finds a bubblewrap starter waiting, the exec server installed and
    // /etc copied.
    this.bwrapStarters.fill();
    await this.execDirs.prepare(this.execServerPath).catch(() => undefined);
    mkdirSync(this.files.rootDir, { recursive: true, mode: 0o700 });
    await this.execDirs.prepareBase();
    await Promise.all(NETWORK_MODES.map((network) => this.etc.forNetwork(network)));
    if (!this.sweptSpares && this.diskSpares !== undefined) {
      this.sweptSpares = true;
      const inUse = new Set<string>();
      for (const id of await this.files.ids()) {
        const disk = (await this.files.readMeta(id))?.image?.disk;
        if (disk) inUse.add(disk);
      }
      await this.diskSpares.sweep(inUse);
    }
    // Older versions kept generated /etc files here; nothing reads them after a sandbox starts.
    await rm(join(this.files.rootDir, ".etc"), { recursive: true, force: true });
    this.collectEtcSoon();
    const features = [`cgroup-v${this.cgroups.version}`, "hibernate"];
    if (egressAvailable()) features.push("egress");
    if (allowlistAvailable()) features.push("egress-allowlist");
    if (this.storage !== undefined) features.push("images", "durable", "fork", "snapshot");
    return { name: this.name, features };
  }

  async create(spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    return this.bringUp(spec, "create", signal);
  }

  /**
   * create: a new directory and (for an image) a new disk. start: a stopped sandbox's directory
   * and disk, kept as they are whatever happens. fork: a new directory around a disk that
   * `fork` has just copied.
   */
  private async bringUp(
    spec: SandboxSpec,
    mode: "create" | "start" | "fork",
    signal?: AbortSignal,
  ): Promise<SandboxHandle> {
    signal?.throwIfAborted();
    const id = spec.id;
    assertSandboxId(id);
    assertLimits(spec.limits);
    if (!canExecute(this.execServerPath)) {
      throw new PolydevError(
        "driver_unavailable",
        `the namespace driver needs ${execServerMissing(this.execServerPath)}`,
      );
    }
    if (spec.network === "egress" && !egressAvailable()) {
      throw new PolydevError(
        "driver_unavailable",
        `network "egress" needs ${SLIRP4NETNS}: apt-get install slirp4netns`,
      );
    }
    if (spec.network === "allowlist" && !allowlistAvailable()) {
      throw new PolydevError(
        "driver_unavailable",
        `network "allowlist" needs ${NFT}: apt-get install nftables`,
      );
    }
    if (spec.image !== undefined && this.storage === undefined) {
      throw new PolydevError(
        "feature_unavailable",
        "this namespace driver has no storage pool, so it cannot start sandboxes from images",
      );
    }
    // Once per driver, overlapping the first create; never a reason to fail one.
    this.tuned ??= this.tuneCgroups();
    const keepsFiles = mode === "start";
    // The directory first: a uid claim must always name an existing one (see UidAllocator).
    if (!keepsFiles) await this.files.claim(id);
    const allocator = spec.image !== undefined ? this.blocks : this.uids;
    let hostUid: number;
    try {
      hostUid = await allocator.allocate(id);
    } catch (error) {
      if (!keepsFiles) await this.removeFiles(id, undefined);
      throw error;
    }
    this.creating.add(id);
    const started: StartProgress = { bwrap: undefined, initPid: undefined };
    try {
      const existingDisk =
        mode === "start"
          ? (await this.files.readMeta(id))?.image?.disk
          : mode === "fork"
            ? diskPath(id)
            : undefined;
      const meta = await this.launch(spec, hostUid, started, existingDisk, signal);
      // The first exec then finds its connection made. After the caller has had its answer
      // (setImmediate): connecting wakes the init, which forks, and that would delay it.
      const execSocket = meta.execSocket;
      if (execSocket !== null) setImmediate(() => this.execConnections.prime(id, execSocket));
      this.startedHere.set(id, { meta, env: { ...spec.env } });
      this.etc.recheckSoon(() => this.collectEtcSoon());
      this.log.info(
        {
          sandboxId: id,
          hostUid,
          initPid: meta.initPid,
          network: spec.network,
          image: meta.image?.name,
          mode,
        },
        "namespace sandbox started",
      );
      return this.handleOf(meta);
    } catch (error) {
      const consoleTail = await this.consoleTail(id);
      if (started.initPid !== undefined) await this.killInit(id, started.initPid);
      if (started.bwrap) await this.killStartup(id, started.bwrap);
      await this.cgroups.destroy(id).catch(() => undefined);
      await allocator.release(hostUid, id);
      if (!keepsFiles) await this.removeFiles(id, mode === "fork" ? diskPath(id) : started.disk);
      await this.execDirs.remove(id).catch(() => undefined);
      this.log.warn({ sandboxId: id, err: error, consoleTail }, "namespace sandbox failed to start");
      throw new PolydevError(
        "sandbox_failed",
        `sandbox ${id} did not start: ${error instanceof Error ? error.message : String(error)}`,
        { details: { consoleTail }, cause: error },
      );
    } finally {
      this.creating.delete(id);
    }
  }

  /** A sandbox's host directory and, when `disk`, its disk: both gone for good. */
  private async removeFiles(id: string, disk: string | undefined): Promise<void> {
    if (disk !== undefined && this.storage !== undefined)
      await this.storage.removeDir(disk).catch(() => undefined);
    await rm(this.files.dir(id), { recursive: true, force: true }).catch(() => undefined);
  }

  private async launch(
    spec: SandboxSpec,
    hostUid: number,
    started: StartProgress,
    /** A stopped sandbox's or a fork's disk; undefined for a create (a new or spare disk). */
    existingDisk: string | undefined,
    signal?: AbortSignal,
  ): Promise<SandboxMeta> {
    const id = spec.id;
    const execDir = this.execDirs.dir(id);
    const execSocket = this.execDirs.socket(id);
    if (Buffer.byteLength(execSocket) > MAX_SOCKET_PATH_BYTES) {
      throw new Error(`the exec socket path ${execSocket} is too long for a unix socket`);
    }
    // The files and cgroups are tiny synchronous writes (see CgroupsV1.create for why).
    await this.cgroups.create(id, spec.limits);
    await this.files.prepare(id);
    const etcDir = await this.etc.forNetwork(spec.network);
    // Until meta.json names it, nothing on disk says this create uses it.
    this.etcPinned.set(etcDir, (this.etcPinned.get(etcDir) ?? 0) + 1);
    writeFileSync(this.envFile(id), JSON.stringify(spec.env), { mode: 0o600 });
    // The init (the sandbox's uid) creates its socket here, then the host takes the directory
    // back (below) before anything else runs in the sandbox.
    const execServer = await this.execDirs.prepare(this.execServerPath);
    mkdirSync(execDir, { mode: 0o700 });
    chownSync(execDir, hostUid, hostUid);
    const image: ImageMeta | null = spec.image !== undefined ? imageMeta(id, spec.image) : null;
    let diskDir: string | undefined;
    if (image !== null && this.storage !== undefined) {
      const limit = changesLimit(spec.limits.diskMb, image.imageBytes ?? 0);
      const spare = existingDisk === undefined ? this.diskSpares?.take(limit) : undefined;
      image.disk = existingDisk ?? spare ?? image.disk;
      if (existingDisk === undefined) started.disk = image.disk;
      diskDir = await prepareDisk(this.storage, image.disk, limit, {
        create: existingDisk === undefined && spare === undefined,
        empty: existingDisk === undefined,
        image,
      });
    }
    const consoleFd = openSync(this.files.consoleLog(id), "a", 0o600);
    try {
      const procs = this.cgroups.procsFiles(id);
      const program =
        image !== null && diskDir !== undefined
          ? imageStarterArgs({
              hostBase: hostUid,
              layers: image.layers,
              disk: diskDir,
              toolbox: this.toolboxDir(),
              execServerCopy: execServer,
              procsFiles: procs,
            })
          : [
              "--join",
              String(hostUid),
              String(hostUid),
              String(procs.length),
              ...procs,
              "--",
              "/usr/bin/bwrap",
              ...bwrapArgs(spec.limits.diskMb * MiB, { execServer }),
            ];
      // bubblewrap runs as the sandbox's uid, which cannot read the root-only data directory:
      // the /etc copy and the exec server's socket directory reach it as open descriptors
      // (fd 4, 5).
      const dataFiles = [etcDir, execDir];
      // A process started ahead of time (see BwrapStarters) opens those files as root, joins
      // the cgroups, drops to the sandbox's uid and becomes bubblewrap: nothing forks the
      // server process on the way, and no descriptor of the server's reaches the sandbox.
      const bwrap: ChildProcess = this.bwrapStarters.start([
        this.files.consoleLog(id),
        String(dataFiles.length),
        ...dataFiles.flatMap((path, index) => [String(FIRST_DATA_FD + index), path]),
        ...program,
      ]);
      started.bwrap = bwrap;
      const ready = await waitUntilReady(bwrap, {
        timeoutMs: this.startTimeoutMs,
        signal,
        onInitPid: (pid) => {
          started.initPid = pid;
        },
      });
      const sealed = this.sealExecDir(execDir, execSocket, hostUid);
      sealed.catch(() => undefined);
      // slirp4netns starts only once bubblewrap has finished with the network namespace: started
      // earlier, its configuration raced bubblewrap's own and failed now and then.
      const slirp =
        spec.network === "egress"
          ? slirpReady(
              spawnSlirp(`/proc/${ready.initPid}/ns/net`, this.cgroups.procsFiles(id), consoleFd),
              this.startTimeoutMs,
              signal,
            )
          : undefined;
      slirp?.catch(() => undefined);
      const [initStartTime, bwrapStartTime] = await Promise.all([
        startTimeOf(ready.initPid),
        startTimeOf(ready.bwrapPid),
        sealed,
      ]);
      if (initStartTime === undefined) throw new Error("the sandbox's init exited right after starting");
      let slirpPid: number | null = null;
      let slirpStartTime: number | null = null;
      if (spec.network === "egress") {
        if (!slirp) throw new Error("slirp4netns was not started");
        slirpPid = await slirp;
        slirpStartTime = (await startTimeOf(slirpPid)) ?? null;
        await denyRoutes(this.execServerPath, ready.initPid, deniedDestinations());
      }
      // Before create returns, so before anything of the user's runs in the sandbox.
      if (spec.network === "allowlist") await setupAllowlist(this.execServerPath, ready.initPid);
      const meta: SandboxMeta = {
        sandboxId: id,
        hostUid,
        bwrapPid: ready.bwrapPid,
        bwrapStartTime: bwrapStartTime ?? null,
        initPid: ready.initPid,
        initStartTime,
        network: spec.network,
        slirpPid,
        slirpStartTime,
        cgroupPaths: this.cgroups.paths(id),
        createdAt: Date.now(),
        execSocket,
        etcDir,
        image,
        stoppedAt: null,
      };
      await this.files.writeMeta(meta);
      return meta;
    } finally {
      closeSync(consoleFd);
      const pins = (this.etcPinned.get(etcDir) ?? 1) - 1;
      if (pins > 0) this.etcPinned.set(etcDir, pins);
      else this.etcPinned.delete(etcDir);
    }
  }

  async connect(handle: SandboxHandle, signal?: AbortSignal): Promise<AgentConnection> {
    signal?.throwIfAborted();
    // A sandbox this instance started needs no files read back, only a liveness check.
    const started = this.startedHere.get(handle.sandboxId);
    let meta: SandboxMeta;
    let env: Record<string, string>;
    if (started !== undefined && (await isSameProcess(started.meta.initPid, started.meta.initStartTime))) {
      ({ meta, env } = started);
    } else {
      meta = await this.liveMeta(handle);
      env = await this.sandboxEnv(meta.sandboxId);
    }
    const execSocket = meta.execSocket;
    if (execSocket === null) {
      throw new PolydevError(
        "sandbox_not_running",
        `sandbox ${meta.sandboxId} was started without an exec server; destroy it and create a new one`,
      );
    }
    return createInProcessAgent(
      namespaceLauncher({
        execSocket,
        execDir: this.execDirs.dir(meta.sandboxId),
        hostUid: meta.hostUid,
        env,
        network: meta.network,
        image: meta.image
          ? { user: meta.image.user, home: meta.image.home, env: meta.image.env, workdir: meta.image.workdir }
          : undefined,
        execConnections: {
          take: (path) => this.execConnections.take(meta.sandboxId, path),
          release: (path, socket) => this.execConnections.release(meta.sandboxId, path, socket),
        },
      }),
    );
  }

  async hibernate(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const meta = await this.liveMeta(handle);
    await this.cgroups.freeze(meta.sandboxId);
  }

  async resume(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const meta = await this.liveMeta(handle);
    await this.cgroups.thaw(meta.sandboxId);
  }

  async destroy(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const id = handle.sandboxId;
    assertSandboxId(id);
    this.execConnections.forget(id);
    this.startedHere.delete(id);
    this.lastHomeUsage.delete(id);
    const meta = await this.files.readMeta(id);
    if (meta && (await isSameProcess(meta.initPid, meta.initStartTime))) {
      await this.killInit(id, meta.initPid);
    }
    // Killing the cgroups' members takes whatever is left (bubblewrap, slirp4netns), all of
    // which joined before they ran a single instruction.
    await this.cgroups.destroy(id);
    if (meta) {
      // Belt and braces for a process a crash left outside the cgroups; the start time makes
      // sure a recycled pid is never hit.
      await killIfSame(meta.bwrapPid, meta.bwrapStartTime);
      await killIfSame(meta.slirpPid, meta.slirpStartTime);
    }
    // Before the directory goes: a claim naming a missing directory counts as abandoned.
    await this.releaseUids(id, meta);
    if (this.storage !== undefined && meta?.image) await this.storage.removeDir(meta.image.disk);
    await rm(this.files.dir(id), { recursive: true, force: true });
    await this.execDirs.remove(id);
    this.bwrapStarters.fill();
    // Only a sandbox on an outdated snapshot can have been the last to use one.
    if (meta?.etcDir != null && !this.etc.isCurrent(meta.etcDir)) this.collectEtcSoon();
    this.log.info({ sandboxId: id }, "namespace sandbox destroyed");
  }

  /** Whichever uid or block this sandbox holds (meta.json's, or one a failed create left). */
  private async releaseUids(id: string, meta: SandboxMeta | undefined): Promise<void> {
    for (const allocator of [this.uids, this.blocks]) {
      const held = allocator.heldBy(id);
      if (held !== undefined) await allocator.release(held, id);
    }
    if (meta !== undefined && meta.stoppedAt == null) {
      await (meta.image ? this.blocks : this.uids).release(meta.hostUid, id);
    }
  }

  /**
   * Ends every process of the sandbox and gives back its uids and cgroups; its directory (meta,
   * environment) and disk stay for `start`. Only image sandboxes have a disk to keep.
   */
  async stop(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const id = handle.sandboxId;
    assertSandboxId(id);
    const meta = await this.files.readMeta(id);
    if (!meta) throw new PolydevError("sandbox_not_running", `sandbox ${id} is not on this host`);
    if (!meta.image) {
      throw new PolydevError(
        "feature_unavailable",
        `sandbox ${id} has no disk to keep (it was not started from an image)`,
      );
    }
    if (meta.stoppedAt != null) return;
    this.execConnections.forget(id);
    this.startedHere.delete(id);
    if (await isSameProcess(meta.initPid, meta.initStartTime)) await this.killInit(id, meta.initPid);
    await this.cgroups.destroy(id);
    await killIfSame(meta.bwrapPid, meta.bwrapStartTime);
    await killIfSame(meta.slirpPid, meta.slirpStartTime);
    await this.files.writeMeta({ ...meta, stoppedAt: Date.now() });
    await this.blocks.release(meta.hostUid, id);
    await this.execDirs.remove(id);
    this.bwrapStarters.fill();
    this.log.info({ sandboxId: id }, "namespace sandbox stopped");
  }

  /** A stopped (or crashed: a host reboot) image sandbox, started again on its own disk. */
  async start(handle: SandboxHandle, spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    signal?.throwIfAborted();
    const id = handle.sandboxId;
    assertSandboxId(id);
    if (spec.id !== id) throw new PolydevError("invalid_request", `the spec is for ${spec.id}, not ${id}`);
    const meta = await this.files.readMeta(id);
    if (!meta?.image || spec.image === undefined) {
      throw new PolydevError("feature_unavailable", `sandbox ${id} has no disk to start from`);
    }
    if (meta.stoppedAt == null) {
      if (await isSameProcess(meta.initPid, meta.initStartTime)) return this.handleOf(meta);
      // Its processes died without a stop (a host reboot, a kill): what is left goes first.
      await this.cgroups.destroy(id).catch(() => undefined);
      await killIfSame(meta.bwrapPid, meta.bwrapStartTime);
      await killIfSame(meta.slirpPid, meta.slirpStartTime);
      await this.blocks.release(meta.hostUid, id);
      await this.execDirs.remove(id);
    }
    return this.bringUp(spec, "start", signal);
  }

  /** A spare of a warm pool takes on a claim's environment (see SandboxDriver.adopt). */
  async adopt(handle: SandboxHandle, spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    signal?.throwIfAborted();
    if (spec.id !== handle.sandboxId) {
      throw new PolydevError("invalid_request", `the spec is for ${spec.id}, not ${handle.sandboxId}`);
    }
    // A spare this instance started is known without reading its files back (a claim is the
    // warm pool's fast path).
    const started = this.startedHere.get(handle.sandboxId);
    const meta =
      started !== undefined && (await isSameProcess(started.meta.initPid, started.meta.initStartTime))
        ? started.meta
        : await this.liveMeta(handle);
    if (meta.network !== spec.network || (meta.image?.digest ?? null) !== (spec.image?.digest ?? null)) {
      throw new PolydevError(
        "invalid_request",
        `sandbox ${spec.id} has another network or image than the spec`,
      );
    }
    writeFileSync(this.envFile(spec.id), JSON.stringify(spec.env), { mode: 0o600 });
    this.startedHere.set(spec.id, { meta, env: { ...spec.env } });
    return this.handleOf(meta);
  }

  async growDisk(handle: SandboxHandle, diskMb: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const image = await this.imageMetaOf(handle);
    if (!Number.isInteger(diskMb) || diskMb < 1) {
      throw new PolydevError("invalid_request", "diskMb must be a positive integer");
    }
    const meta = await this.files.readMeta(handle.sandboxId);
    const alive =
      meta !== undefined && meta.stoppedAt == null && (await isSameProcess(meta.initPid, meta.initStartTime));
    try {
      await this.requireStorage().setLimit(image.disk, changesLimit(diskMb, image.imageBytes ?? 0));
    } catch (error) {
      // Growing a mounted ext4 needs CAP_SYS_RESOURCE, which some hosts deny even root.
      if (alive && error instanceof PolydevError && error.code === "conflict") {
        throw new PolydevError(
          "conflict",
          `this host cannot grow a disk while its sandbox runs (${error.message}); stop the sandbox, grow its disk, start it`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  /**
   * The sandbox's disk cloned to `targetDir` inside the storage pool (copy-on-write, taken at one
   * instant), whose `upper` directory then holds its changes to the image as an overlay layer.
   */
  async snapshot(handle: SandboxHandle, targetDir: string, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const storage = this.requireStorage();
    const image = await this.imageMetaOf(handle);
    const target = storageRelative(storage, targetDir);
    // The pool's clone is one atomic reflink after a syncfs: consistent as after a power cut,
    // which every file system's journal handles, without freezing the sandbox.
    await storage.cloneDir(image.disk, target, null);
  }

  /**
   * New sandboxes whose disks are reflinked copies of this one's; then each starts on its copy.
   * All or none: a failure destroys the ones made.
   */
  async fork(handle: SandboxHandle, specs: SandboxSpec[], signal?: AbortSignal): Promise<SandboxHandle[]> {
    signal?.throwIfAborted();
    const storage = this.requireStorage();
    const image = await this.imageMetaOf(handle);
    for (const spec of specs) {
      assertSandboxId(spec.id);
      if (spec.image === undefined || spec.image.digest !== image.digest) {
        throw new PolydevError(
          "invalid_request",
          `fork ${spec.id} must have the image of the sandbox it forks`,
        );
      }
    }
    const copied: string[] = [];
    const handles: SandboxHandle[] = [];
    try {
      for (const spec of specs) {
        // The source's size: a fork has the source's limits (a larger one grows afterwards).
        await storage.cloneDir(image.disk, diskPath(spec.id), null);
        copied.push(spec.id);
      }
      for (const spec of specs) handles.push(await this.bringUp(spec, "fork", signal));
      return handles;
    } catch (error) {
      for (const made of handles) await this.destroy(made).catch(() => undefined);
      for (const id of copied) await storage.removeDir(diskPath(id)).catch(() => undefined);
      throw error;
    }
  }

  private requireStorage(): DiskStorage {
    if (this.storage === undefined) {
      throw new PolydevError("feature_unavailable", "this namespace driver has no storage pool for disks");
    }
    return this.storage;
  }

  private async imageMetaOf(handle: SandboxHandle): Promise<ImageMeta> {
    assertSandboxId(handle.sandboxId);
    const meta = await this.files.readMeta(handle.sandboxId);
    if (!meta) throw new PolydevError("not_found", `sandbox ${handle.sandboxId} is not on this host`);
    if (!meta.image) {
      throw new PolydevError(
        "feature_unavailable",
        `sandbox ${handle.sandboxId} was not started from an image`,
      );
    }
    return meta.image;
  }

  /**
   * Sandboxes under this driver's root directory only: the cgroup parent may be shared with
   * other instances (tests, a second server), whose sandboxes are not ours to report.
   */
  async list(signal?: AbortSignal): Promise<ObservedSandbox[]> {
    signal?.throwIfAborted();
    const ids = (await this.files.ids()).filter((id) => !this.creating.has(id));
    return Promise.all(
      ids.map(async (id): Promise<ObservedSandbox> => {
        const meta = await this.files.readMeta(id);
        // A directory without meta.json is a create that crashed half-way: dead, to be destroyed.
        if (!meta) {
          return { sandboxId: id, handle: { sandboxId: id, driver: this.name, data: {} }, alive: false };
        }
        return {
          sandboxId: id,
          handle: this.handleOf(meta),
          alive: await isSameProcess(meta.initPid, meta.initStartTime),
        };
      }),
    );
  }

  async isAlive(handle: SandboxHandle, signal?: AbortSignal): Promise<boolean> {
    signal?.throwIfAborted();
    assertSandboxId(handle.sandboxId);
    const meta = await this.files.readMeta(handle.sandboxId);
    return meta !== undefined && (await isSameProcess(meta.initPid, meta.initStartTime));
  }

  async stats(handle: SandboxHandle, signal?: AbortSignal): Promise<SandboxStats> {
    signal?.throwIfAborted();
    const meta = await this.liveMeta(handle);
    const [usage, diskBytes] = await Promise.all([this.cgroups.usage(meta.sandboxId), this.homeUsage(meta)]);
    return { ...usage, diskBytes };
  }

  /**
   * Bytes used in the home, asked of the sandbox itself (its init's `--disk-usage`): the host
   * never resolves a path inside the sandbox's root, whose symlinks the sandbox controls. A
   * frozen sandbox cannot answer: it reports what it last said. So does one that does not answer
   * within HOME_USAGE_TIMEOUT_MS (say, at its process limit), which never holds stats up.
   */
  private async homeUsage(meta: SandboxMeta): Promise<number> {
    const id = meta.sandboxId;
    // An image sandbox's whole disk is one directory of the pool, which counts it exactly.
    if (meta.image && this.storage !== undefined) return (await this.storage.usage(meta.image.disk)).bytes;
    const execSocket = meta.execSocket;
    if (execSocket === null || this.cgroups.isFrozen(id)) return this.lastHomeUsage.get(id) ?? 0;
    const helper = startOverExecServer(
      this.execConnections.take(id, execSocket),
      {
        argv: [EXEC_SERVER_IN_SANDBOX, "--disk-usage", SANDBOX_HOME],
        cwd: SANDBOX_HOME,
        env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
      },
      (socket) => this.execConnections.release(id, execSocket, socket),
    );
    const timer = setTimeout(() => helper.abandon(), HOME_USAGE_TIMEOUT_MS);
    const result = await runHelper(helper)
      .catch(() => undefined)
      .finally(() => clearTimeout(timer));
    const used = Number(result?.exitCode === 0 ? result.stdout.split(" ")[0] : Number.NaN);
    if (!Number.isSafeInteger(used) || used < 0) return this.lastHomeUsage.get(id) ?? 0;
    this.lastHomeUsage.set(id, used);
    return used;
  }

  async logs(handle: SandboxHandle, signal?: AbortSignal): Promise<string> {
    signal?.throwIfAborted();
    assertSandboxId(handle.sandboxId);
    const text = await this.consoleTail(handle.sandboxId);
    if (!this.cgroups.exists(handle.sandboxId)) return text;
    // The kernel's OOM kills never reach the console: say so here, where a user looks for why
    // a command died.
    const kills = await this.cgroups.oomKills(handle.sandboxId);
    return kills > 0 ? `${text}polydev: memory limit reached, ${kills} process(es) killed\n` : text;
  }

  /**
   * The init goes first: the kernel then kills everything in the sandbox's pid namespace and
   * bubblewrap, still alive to do it, reaps it. Killing all members at once would orphan the
   * init to the host's pid 1, leaving a zombie of the sandbox's uid until that gets round to it.
   */
  private async killInit(id: string, initPid: number): Promise<void> {
    const startTime = await startTimeOf(initPid);
    if (startTime === undefined) return;
    // A frozen (hibernated) init would take the kill only once thawed.
    await this.cgroups.thaw(id).catch(() => undefined);
    await killIfSame(initPid, startTime);
    await until("the sandbox's init to be reaped", () => isReaped(initPid, startTime), 2_000).catch(
      () => undefined,
    );
  }

  /**
   * Ends a start that failed before its init's pid was known. Everything but the outer
   * bubblewrap goes first, so that bubblewrap reaps the sandbox's pid 1 instead of orphaning it
   * to the host's init; then bubblewrap itself, which this driver spawned and so reaps. It may
   * still be on its way into the cgroups (the joining shell had not run yet): it must be gone
   * before they can be emptied and removed.
   */
  private async killStartup(id: string, bwrap: ChildProcess): Promise<void> {
    if (bwrap.exitCode !== null || bwrap.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => bwrap.once("exit", () => resolve()));
    // An init it cloned is found as its child too, in case the cgroups are already gone.
    const children =
      bwrap.pid === undefined
        ? []
        : (await readFile(`/proc/${bwrap.pid}/task/${bwrap.pid}/children`, "utf8").catch(() => ""))
            .split(" ")
            .filter((field) => field.length > 0)
            .map(Number);
    const members = await this.cgroups.members(id).catch(() => [] as number[]);
    const others = [...new Set([...children, ...members])].filter((pid) => pid !== bwrap.pid);
    for (const pid of others) killQuietly(pid);
    if (others.length > 0) await Promise.race([exited, delay(500)]);
    if (bwrap.exitCode === null && bwrap.signalCode === null) bwrap.kill("SIGKILL");
    await Promise.race([exited, delay(2_000)]);
  }

  /**
   * The init has bound its socket (it said `ready` only after listen): the directory becomes
   * root's, so nothing in the sandbox can swap the socket for anything else (a symlink to a host
   * socket, say) that the host would then connect to. Nothing else runs in the sandbox yet.
   */
  private async sealExecDir(execDir: string, execSocket: string, hostUid: number): Promise<void> {
    chownSync(execDir, 0, 0);
    chmodSync(execDir, 0o755);
    const socket = lstatSync(execSocket);
    if (!socket.isSocket() || socket.uid !== hostUid) {
      throw new Error("the sandbox's init did not create its exec socket");
    }
  }

  /**
   * Deletes the /etc snapshots no sandbox of this root uses any more, in the background, one
   * pass at a time. Reads every meta.json, so it runs at start-up, after a rebuild and after
   * destroying a sandbox on an outdated snapshot, never on a create's path.
   */
  private collectEtcSoon(): void {
    if (this.etcCollecting !== undefined) return;
    this.etcCollecting = (async () => {
      const inUse = new Set<string>();
      for (const id of await this.files.ids()) {
        const etcDir = (await this.files.readMeta(id))?.etcDir;
        if (etcDir) inUse.add(etcDir);
      }
      await this.etc.collect((dir) => inUse.has(dir) || this.etcPinned.has(dir));
    })()
      .catch((error: unknown) => this.log.warn({ err: error }, "could not delete unused /etc snapshots"))
      .finally(() => {
        this.etcCollecting = undefined;
      });
  }

  private handleOf(meta: SandboxMeta): SandboxHandle {
    return { sandboxId: meta.sandboxId, driver: this.name, data: { ...meta } };
  }

  /** The sandbox's metadata, or `sandbox_not_running` when it is gone or its init died. */
  private async liveMeta(handle: SandboxHandle): Promise<SandboxMeta> {
    assertSandboxId(handle.sandboxId);
    const meta = await this.files.readMeta(handle.sandboxId);
    if (!meta || !(await isSameProcess(meta.initPid, meta.initStartTime))) {
      throw new PolydevError(
        "sandbox_not_running",
        `sandbox ${handle.sandboxId} is not running on this host`,
      );
    }
    return meta;
  }

  private envFile(id: string): string {
    return join(this.files.dir(id), "env.json");
  }

  private async sandboxEnv(id: string): Promise<Record<string, string>> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(this.envFile(id), "utf8"));
    } catch (error) {
      throw new PolydevError("sandbox_failed", `sandbox ${id} has no readable env.json`, { cause: error });
    }
    const env: Record<string, string> = {};
    if (typeof parsed === "object" && parsed !== null) {
      for (const [key, value] of Object.entries(parsed)) if (typeof value === "string") env[key] = value;
    }
    return env;
  }

  private async tuneCgroups(): Promise<void> {
    if (!this.tuneHostCgroups || process.getuid?.() !== 0) return;
    const result = await favorDynamicCgroupChanges().catch((error: unknown) => ({
      state: "unavailable" as const,
      reason: String(error),
    }));
    if (result.state === "enabled") {
      this.log.info({ mountPoint: result.mountPoint }, "remounted cgroup2 with favordynmods: faster creates");
    } else if (result.state === "unavailable") {
      this.log.info({ reason: result.reason }, "cgroup migrations stay slow (no favordynmods)");
    }
  }

  private async consoleTail(id: string): Promise<string> {
    try {
      const file = await open(this.files.consoleLog(id), "r");
      try {
        const { size } = await file.stat();
        const length = Math.min(size, CONSOLE_TAIL_BYTES);
        const buffer = Buffer.alloc(length);
        await file.read(buffer, 0, length, size - length);
        return buffer.toString("utf8");
      } finally {
        await file.close();
      }
    } catch {
      return "";
    }
  }
}

function assertLimits(limits: SandboxLimits): void {
  const problems: string[] = [];
  if (!(limits.cpu > 0)) problems.push("cpu must be above 0");
  if (!(Number.isInteger(limits.memoryMb) && limits.memoryMb >= 16))
    problems.push("memoryMb must be an integer ≥ 16");
  // A tmpfs of size 0 is unlimited: never let a zero through.
  if (!(Number.isInteger(limits.diskMb) && limits.diskMb >= 1))
    problems.push("diskMb must be an integer ≥ 1");
  if (!(Number.isInteger(limits.pidsMax) && limits.pidsMax >= 8))
    problems.push("pidsMax must be an integer ≥ 8");
  if (problems.length > 0) {
    throw new PolydevError("invalid_request", `invalid sandbox limits: ${problems.join("; ")}`);
  }
}

function execServerMissing(path: string): string {
  return `the exec server ${path} (build it with scripts/ensure.sh, which compiles native/*.c with cc)`;
}

function canExecute(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
