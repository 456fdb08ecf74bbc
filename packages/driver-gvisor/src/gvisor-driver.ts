/**
 * The `gvisor` driver: each sandbox is a runsc container (its own user-space kernel, the
 * Sentry) whose root is the image's layers under a host overlay, with the toolbox bound
 * read-only at /opt/polydev. The container's process is the in-guest agent, listening on a unix
 * socket runsc places in a host directory: the server connects to it as often as it likes, and
 * again after its own restart, with no process of its own per sandbox.
 *
 * Disk: the overlay's upper directory lives on a per-sandbox tmpfs of the sandbox's disk size
 * (less the image's bytes), so writes past it fail with ENOSPC inside.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, watch } from "node:fs";
import { chown, cp, mkdir, open, readdir, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { connect as connectSocket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { connectAgent } from "@polydev/agent";
import type {
  AgentConnection,
  DriverInfo,
  ObservedSandbox,
  SandboxDriver,
  SandboxHandle,
  SandboxSpec,
  SandboxStats,
} from "@polydev/core";
import { HandedOverConnections, PolydevError } from "@polydev/core";
import { adoptedEnv, withAdoptedEnv } from "./adopted-env.js";
import { RELISTEN_SIGNAL } from "./agent-signals.js";
import { checkpointContainer, signalAgent } from "./checkpoint.js";
import {
  egressNetworkMissing,
  moveSlirpIntoCgroups,
  setUpEgressNetwork,
  tearDownEgressNetwork,
} from "./egress-network.js";
import { type ForkableSpec, retarget } from "./fork-spec.js";
import { AGENT_SOCKET_NAME, ensureGuestLayer } from "./guest-layer.js";
import { imageUser } from "./image-user.js";
import { ociSpec } from "./oci-spec.js";
import type { RunscOptions } from "./runsc.js";
import { runsc, runscOk } from "./runsc.js";
import { SandboxLocks } from "./sandbox-locks.js";

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
/** The smallest disk a sandbox gets for its changes, whatever its image's size. */
const MIN_CHANGES_BYTES = 4 * MiB;
/** What logs() returns at most. */
const MAX_LOG_BYTES = 64 * 1024;
const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export type GvisorPlatform = "ptrace" | "systrap" | "kvm";

export interface GvisorDriverOptions {
  /** The driver's state: runsc's --root, each sandbox's bundle and disk. Made root-only. */
  rootDir: string;
  /**
   * The toolbox directory (see @polydev/images ensureToolbox), bound read-only at /opt/polydev;
   * a function when a server builds it in the background (undefined until then).
   */
  toolboxDir: string | (() => string | undefined);
  /** Default /usr/bin/runsc (Debian's `runsc` package). */
  runscPath?: string;
  /** gVisor's platform; default "ptrace" (works in any VM; "systrap"/"kvm" where runsc has them). */
  platform?: GvisorPlatform;
  /** The host cgroup (v1 hierarchies or v2) every sandbox's cgroup is made under; default "polydev-gvisor". */
  cgroupParent?: string;
  /** How long create waits for the agent's socket and hello; default 30 000 ms. */
  readyTimeoutMs?: number;
  /**
   * Host memory each sandbox gets on top of its memoryMb, default 128: the host cgroup holds the
   * Sentry, its gofer and the agent's node as well as the guest, and exceeding it ends the whole
   * sandbox (this runsc has no OOM killer of its own).
   */
  memoryOverheadMb?: number;
}

/** What a sandbox's directory keeps, so any later process (a restarted server) finds it. */
interface SandboxMeta {
  sandboxId: string;
  containerId: string;
  memoryLimitBytes: number;
  hibernated: boolean;
  /** The guest's CPU time when it was checkpointed. */
  pausedCpuUsageNs?: number;
  /** Hibernated by `runsc pause` (network "egress"), not by a checkpoint. */
  frozen?: boolean;
  /** The overlay's lower directories, top first (a fork mounts the same). */
  lowerDirs?: string[];
  imageDigest?: string;
  /** "egress": the container runs in its own network namespace with slirp4netns. */
  network?: "none" | "egress";
}

/** In a sandbox's directory: its processes and memory while it is hibernated. */
const CHECKPOINT_DIR = "checkpoint";

/** In a sandbox's directory: the environment a warm pool's claim gave it (adopted-env.ts). */
const ADOPTED_ENV_FILE = "env.json";

const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export class GvisorDriver implements SandboxDriver {
  readonly name = "gvisor";
  private readonly options: Readonly<Required<GvisorDriverOptions>>;
  private readonly runsc: RunscOptions;
  private guestLayer: Promise<string> | undefined;
  private readonly locks = new SandboxLocks();
  private readonly handedOver = new HandedOverConnections();

  constructor(options: GvisorDriverOptions) {
    this.options = Object.freeze({
      runscPath: "/usr/bin/runsc",
      platform: "ptrace",
      cgroupParent: "polydev-gvisor",
      readyTimeoutMs: 30_000,
      memoryOverheadMb: 128,
      ...options,
    });
    this.runsc = Object.freeze({
      runscPath: this.options.runscPath,
      stateDir: join(this.options.rootDir, "runsc"),
      platform: this.options.platform,
    });
  }

  private toolboxDir(): string | undefined {
    const toolbox = this.options.toolboxDir;
    return typeof toolbox === "function" ? toolbox() : toolbox;
  }

  private requireToolbox(): string {
    const toolbox = this.toolboxDir();
    if (toolbox === undefined) {
      throw new PolydevError(
        "driver_unavailable",
        "the gvisor driver needs the toolbox (/opt/polydev), which is not built yet; see the server log",
      );
    }
    return toolbox;
  }

  async probe(): Promise<DriverInfo> {
    const missing: string[] = [];
    if (!existsSync(this.options.runscPath))
      missing.push(`runsc (apt-get install runsc; looked at ${this.options.runscPath})`);
    if (process.getuid?.() !== 0)
      missing.push("root (runsc mounts the sandbox's file system and makes its cgroups)");
    if (!existsSync("/sys/fs/cgroup/memory") && !existsSync("/sys/fs/cgroup/cgroup.controllers")) {
      missing.push("cgroups (mount cgroup v1 or v2 under /sys/fs/cgroup)");
    }
    const toolbox = this.toolboxDir();
    if (toolbox === undefined || !existsSync(toolbox))
      missing.push(
        `the toolbox (node and the agent for /opt/polydev; the setup step builds it)${toolbox ? ` at ${toolbox}` : ""}`,
      );
    if (missing.length > 0) {
      throw new PolydevError("driver_unavailable", `the gvisor driver needs ${missing.join(", ")}`, {
        details: { missing },
      });
    }
    const version = await runsc(this.runsc, ["--version"]).catch(() => undefined);
    if (version?.code !== 0) {
      throw new PolydevError("driver_unavailable", `${this.options.runscPath} --version failed`);
    }
    const cgroups = existsSync("/sys/fs/cgroup/cgroup.controllers") ? "cgroup-v2" : "cgroup-v1";
    const egress = egressNetworkMissing() === undefined ? ["egress"] : [];
    return {
      name: this.name,
      features: ["images", "hibernate", "hibernate-memory", "fork", "snapshot", ...egress, cgroups],
    };
  }

  /** The driver's layer, built on first use; a failed build is tried again next time. */
  private ensureGuestLayer(): Promise<string> {
    if (this.guestLayer === undefined) {
      this.guestLayer = ensureGuestLayer(join(this.options.rootDir, "guest"));
      this.guestLayer.catch(() => {
        this.guestLayer = undefined;
      });
    }
    return this.guestLayer;
  }

  private sandboxDir(sandboxId: string): string {
    return join(this.options.rootDir, "sandboxes", sandboxId);
  }

  /**
   * The sandbox's mounts, apart from its state (meta, spec, logs): its disk (a tmpfs of its
   * disk size) and its root (the overlay), so what the sandbox writes is never host state.
   */
  private diskDir(sandboxId: string): string {
    return join(this.options.rootDir, "mounts", sandboxId, "disk");
  }

  private rootfsDir(sandboxId: string): string {
    return join(this.options.rootDir, "mounts", sandboxId, "rootfs");
  }

  private dirOf(handle: SandboxHandle): string {
    if (!SANDBOX_ID.test(handle.sandboxId))
      throw new PolydevError("invalid_request", "not a gvisor sandbox id");
    return this.sandboxDir(handle.sandboxId);
  }

  private logFile(dir: string): string {
    return join(dir, "runsc.log");
  }

  async create(spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    const image = spec.image;
    if (image === undefined) {
      throw new PolydevError("invalid_request", "the gvisor driver runs image sandboxes only: give an image");
    }
    if (spec.network === "allowlist") {
      throw new PolydevError(
        "feature_unavailable",
        `the gvisor driver offers networks "none" and "egress" (an allow-list needs the Sentry's connections intercepted, which this runsc cannot do)`,
      );
    }
    const egressMissing = spec.network === "egress" ? egressNetworkMissing() : undefined;
    if (egressMissing !== undefined) {
      throw new PolydevError("feature_unavailable", `network "egress" needs ${egressMissing}`);
    }
    if (!SANDBOX_ID.test(spec.id)) {
      throw new PolydevError("invalid_request", "sandbox ids are letters, digits, '.', '_' and '-'");
    }
    for (const layer of image.layers) {
      // overlayfs separates lower directories with ':' and options with ','.
      if (/[:,\n]/.test(layer) || !layer.startsWith("/")) {
        throw new PolydevError("invalid_request", `layer path ${layer} cannot be given to overlayfs`);
      }
    }
    const user = imageUser(image.user, image.layers);
    const guestLayer = await this.ensureGuestLayer();

    await mkdir(join(this.options.rootDir, "sandboxes"), { recursive: true, mode: 0o700 });
    const dir = this.sandboxDir(spec.id);
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (error) {
      throw new PolydevError("conflict", `sandbox ${spec.id} already exists`, { cause: error });
    }
    const meta: SandboxMeta = {
      sandboxId: spec.id,
      containerId: spec.id,
      memoryLimitBytes: spec.limits.memoryMb * MiB,
      hibernated: false,
      lowerDirs: [guestLayer, ...[...image.layers].reverse()],
      imageDigest: image.digest,
      network: spec.network === "egress" ? "egress" : "none",
    };
    const handle: SandboxHandle = { sandboxId: spec.id, driver: this.name, data: { containerId: spec.id } };
    try {
      await writeFile(join(dir, "meta.json"), JSON.stringify(meta), { mode: 0o600 });
      const disk = this.diskDir(spec.id);
      const rootfs = this.rootfsDir(spec.id);
      await mkdir(join(dir, "bundle"), { mode: 0o700 });
      // On the sandbox's disk: the sandbox can write into this directory, and only so much.
      const socketDir = join(disk, "socket");
      await mkdir(disk, { recursive: true, mode: 0o700 });
      await mkdir(rootfs, { recursive: true, mode: 0o755 });
      const changesBytes = Math.max(MIN_CHANGES_BYTES, spec.limits.diskMb * MiB - (image.sizeBytes ?? 0));
      await mountCommand(["-t", "tmpfs", "-o", `size=${changesBytes},mode=0700`, "tmpfs", disk]);
      await mkdir(join(disk, "upper"), { mode: 0o755 });
      await mkdir(join(disk, "work"), { mode: 0o700 });
      await mkdir(socketDir, { mode: 0o755 });
      if (user.home !== "/" && !image.layers.some((layer) => existsSync(join(layer, user.home)))) {
        await mkdir(join(disk, "upper", user.home), { recursive: true, mode: 0o700 });
        await chown(join(disk, "upper", user.home), user.uid, user.gid);
      }
      await mountOverlay(meta.lowerDirs ?? [], disk, rootfs);
      const env: Record<string, string> = {
        PATH: DEFAULT_PATH,
        ...image.env,
        ...spec.env,
        HOME: user.home,
      };
      const config = ociSpec({
        rootfs,
        cgroupsPath: `/${this.options.cgroupParent}/${spec.id}`,
        limits: spec.limits,
        env,
        user,
        hostname: "polydev",
        memoryOverheadMb: this.options.memoryOverheadMb,
        toolboxDir: this.requireToolbox(),
        socketDir,
      });
      if (meta.network === "egress") {
        // The outside's names through slirp4netns's resolver; the image's own file stays below.
        await mkdir(join(disk, "upper", "etc"), { recursive: true, mode: 0o755 });
        await writeFile(join(disk, "upper", "etc", "resolv.conf"), "nameserver 10.0.2.3\n", { mode: 0o644 });
      }
      await writeFile(
        join(dir, "bundle", "config.json"),
        JSON.stringify(await this.withNetwork(dir, meta, config, signal)),
        { mode: 0o600 },
      );
      const started = await runsc(
        this.runsc,
        ["run", "--detach", `--bundle=${join(dir, "bundle")}`, spec.id],
        {
          logFile: this.logFile(dir),
          panicLog: join(dir, "panic.log"),
          detached: true,
          network: meta.network === "egress" ? "sandbox" : "none",
          ...(signal ? { signal } : {}),
        },
      );
      if (started.code !== 0) {
        throw new PolydevError(
          "sandbox_failed",
          `runsc could not start the sandbox: ${await this.tail(dir)}`,
        );
      }
      if (meta.network === "egress")
        await moveSlirpIntoCgroups(dir, `/${this.options.cgroupParent}/${spec.id}`);
      this.handedOver.keep(spec.id, await this.waitForAgent(handle, signal));
      return handle;
    } catch (error) {
      await this.destroy(handle).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Readiness is the agent's hello on its socket: the socket appearing, then one handshake,
   * whose connection is the caller's.
   */
  private async waitForAgent(handle: SandboxHandle, signal?: AbortSignal): Promise<AgentConnection> {
    const socketDir = join(this.diskDir(handle.sandboxId), "socket");
    const socketPath = join(socketDir, AGENT_SOCKET_NAME);
    const readyPath = join(socketDir, "ready");
    const deadline = AbortSignal.timeout(this.options.readyTimeoutMs);
    const waitSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
    await new Promise<void>((resolve, reject) => {
      const watcher = watch(socketDir);
      const done = (error?: Error): void => {
        watcher.close();
        clearInterval(liveness);
        waitSignal.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve();
      };
      const onAbort = (): void =>
        done(
          new PolydevError(
            "timeout",
            `the sandbox's agent did not start within ${this.options.readyTimeoutMs} ms`,
          ),
        );
      // A sandbox whose agent died never makes the socket: notice instead of waiting it out.
      const liveness = setInterval(() => {
        // A check that could not run (runsc failed to spawn) is no verdict: the next tick or
        // the deadline decides.
        this.containerAlive(handle).then(
          (alive) => {
            if (!alive)
              done(new PolydevError("sandbox_failed", "the sandbox stopped before its agent started"));
          },
          () => undefined,
        );
      }, 1000);
      watcher.on("change", () => {
        if (existsSync(readyPath)) done();
      });
      watcher.on("error", (error) => done(error));
      waitSignal.addEventListener("abort", onAbort, { once: true });
      if (existsSync(readyPath)) done();
    });
    return this.connectSocket(socketPath, waitSignal);
  }

  private connectSocket(socketPath: string, signal?: AbortSignal): Promise<AgentConnection> {
    return new Promise((resolve, reject) => {
      const socket = connectSocket(socketPath);
      socket.once("error", (error) =>
        reject(
          new PolydevError("sandbox_not_running", `the sandbox's agent is not reachable: ${error.message}`),
        ),
      );
      socket.once("connect", () => {
        socket.removeAllListeners("error");
        socket.on("error", () => undefined);
        connectAgent(socket, signal ? { signal } : {}).then(resolve, (error: unknown) => {
          socket.destroy();
          reject(error);
        });
      });
    });
  }

  private async readMeta(dir: string): Promise<SandboxMeta | undefined> {
    try {
      return JSON.parse(await readFile(join(dir, "meta.json"), "utf8")) as SandboxMeta;
    } catch {
      return undefined;
    }
  }

  private async writeMeta(dir: string, meta: SandboxMeta): Promise<void> {
    await writeFile(join(dir, "meta.json"), JSON.stringify(meta), { mode: 0o600 });
  }

  async connect(handle: SandboxHandle, signal?: AbortSignal): Promise<AgentConnection> {
    const dir = this.dirOf(handle);
    const meta = await this.readMeta(dir);
    if (meta === undefined) throw new PolydevError("not_found", `sandbox ${handle.sandboxId} does not exist`);
    if (meta.hibernated)
      throw new PolydevError("sandbox_not_running", `sandbox ${handle.sandboxId} is hibernated`);
    const env = await readAdoptedEnv(dir);
    const connection =
      this.handedOver.take(handle.sandboxId) ??
      (await this.connectSocket(join(this.diskDir(handle.sandboxId), "socket", AGENT_SOCKET_NAME), signal));
    return withAdoptedEnv(connection, env);
  }

  /**
   * A warm pool's spare takes on a claim's environment (see SandboxDriver.adopt). The spare's
   * agent must answer: its connection is then the one the claim's first `connect` gets.
   */
  async adopt(handle: SandboxHandle, spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    signal?.throwIfAborted();
    if (spec.id !== handle.sandboxId) {
      throw new PolydevError("invalid_request", `the spec is for ${spec.id}, not ${handle.sandboxId}`);
    }
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    if (
      spec.network !== (meta.network ?? "none") ||
      (meta.imageDigest ?? null) !== (spec.image?.digest ?? null)
    ) {
      throw new PolydevError(
        "invalid_request",
        `sandbox ${spec.id} has another network or image than the spec`,
      );
    }
    if (meta.hibernated) throw new PolydevError("sandbox_not_running", `sandbox ${spec.id} is hibernated`);
    const connection =
      this.handedOver.take(spec.id) ??
      (await this.connectSocket(join(this.diskDir(spec.id), "socket", AGENT_SOCKET_NAME), signal));
    try {
      await writeFile(join(dir, ADOPTED_ENV_FILE), JSON.stringify(adoptedEnv(spec.env)), { mode: 0o600 });
    } catch (error) {
      await connection.close();
      throw error;
    }
    this.handedOver.keep(spec.id, connection);
    return { sandboxId: spec.id, driver: this.name, data: { containerId: meta.containerId } };
  }

  /**
   * Writes the sandbox's processes and memory to `checkpoint/` in its directory (at most its
   * memory, which its limit bounds) and ends its Sentry; its disk stays mounted. Connections
   * to it end: connect again after resume.
   */
  hibernate(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    return this.locks.run(handle.sandboxId, () => this.hibernateNow(handle, signal));
  }

  private async hibernateNow(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    if (meta.hibernated) return;
    this.handedOver.drop(handle.sandboxId);
    const { cpuUsageNs } = await this.sentryStats(handle, dir, signal);
    if (meta.network === "egress") {
      await this.pause(handle, dir, signal);
      await this.writeMeta(dir, { ...meta, hibernated: true, frozen: true, pausedCpuUsageNs: cpuUsageNs });
      return;
    }
    await this.checkpoint(handle, dir, signal);
    await this.writeMeta(dir, { ...meta, hibernated: true, pausedCpuUsageNs: cpuUsageNs });
  }

  /**
   * An "egress" sandbox is frozen in RAM instead (`runsc pause`): this runsc restores the
   * Sentry's network stack without its interfaces, so a restored egress sandbox has no route.
   */
  private async pause(handle: SandboxHandle, dir: string, signal?: AbortSignal): Promise<void> {
    await runscOk(this.runsc, ["pause", handle.sandboxId], {
      logFile: this.logFile(dir),
      ...(signal ? { signal } : {}),
    });
  }

  private async unpause(handle: SandboxHandle, dir: string, signal?: AbortSignal): Promise<void> {
    await runscOk(this.runsc, ["resume", handle.sandboxId], {
      logFile: this.logFile(dir),
      ...(signal ? { signal } : {}),
    });
  }

  /** Checkpoints a running sandbox into its `checkpoint/` and removes the stopped container. */
  private async checkpoint(handle: SandboxHandle, dir: string, signal?: AbortSignal): Promise<void> {
    // The agent ends every connection when it lets go of its socket: an unclaimed one is dead.
    this.handedOver.drop(handle.sandboxId);
    await checkpointContainer({
      runsc: this.runsc,
      containerId: handle.sandboxId,
      socketDir: join(this.diskDir(handle.sandboxId), "socket"),
      imageDir: join(dir, CHECKPOINT_DIR),
      call: { logFile: this.logFile(dir) },
      timeoutMs: this.options.readyTimeoutMs,
      alive: () => this.containerAlive(handle),
      signal,
    });
    // What is left of the container is runsc's record of a stopped one.
    await runsc(this.runsc, ["delete", "--force", handle.sandboxId], { logFile: this.logFile(dir) });
  }

  resume(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    return this.locks.run(handle.sandboxId, () => this.resumeNow(handle, signal));
  }

  private async resumeNow(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    if (!meta.hibernated) return;
    if (meta.frozen === true) {
      await this.unpause(handle, dir, signal);
    } else {
      await this.restore(handle.sandboxId, dir, join(dir, CHECKPOINT_DIR), meta, signal);
      await rm(join(dir, CHECKPOINT_DIR), { recursive: true, force: true });
    }
    const { pausedCpuUsageNs: _, frozen: __, ...running } = meta;
    await this.writeMeta(dir, { ...running, hibernated: false });
  }

  /**
   * Starts container `sandboxId` from its bundle and the checkpoint in `imageDir`, tells the
   * agent to listen again and waits for it. A restore that fails leaves no container behind.
   */
  private async restore(
    sandboxId: string,
    dir: string,
    imageDir: string,
    meta: SandboxMeta,
    signal?: AbortSignal,
  ): Promise<void> {
    const handle: SandboxHandle = { sandboxId, driver: this.name, data: { containerId: sandboxId } };
    // What the agent left when it let go of its socket, before it listens again.
    const socketDir = join(this.diskDir(sandboxId), "socket");
    for (const name of [AGENT_SOCKET_NAME, "ready"]) await rm(join(socketDir, name), { force: true });
    try {
      const restored = await runsc(
        this.runsc,
        ["restore", "--detach", `--bundle=${join(dir, "bundle")}`, `--image-path=${imageDir}`, sandboxId],
        {
          logFile: this.logFile(dir),
          panicLog: join(dir, "panic.log"),
          detached: true,
          network: meta.network === "egress" ? "sandbox" : "none",
          ...(signal ? { signal } : {}),
        },
      );
      if (restored.code !== 0) {
        throw new PolydevError(
          "sandbox_failed",
          `runsc could not restore the sandbox: ${await this.tail(dir)}`,
        );
      }
      await signalAgent(this.runsc, sandboxId, RELISTEN_SIGNAL, {
        logFile: this.logFile(dir),
      });
      this.handedOver.keep(sandboxId, await this.waitForAgent(handle, signal));
    } catch (error) {
      await runsc(this.runsc, ["delete", "--force", sandboxId], { logFile: this.logFile(dir) }).catch(
        () => undefined,
      );
      throw error;
    }
  }

  /**
   * Copies the sandbox's disk as a layer: `targetDir/upper` is its changes to its image, taken
   * while its Sentry is checkpointed (one instant for memory and disk), after which it runs on.
   */
  snapshot(handle: SandboxHandle, targetDir: string, signal?: AbortSignal): Promise<void> {
    return this.locks.run(handle.sandboxId, () => this.snapshotNow(handle, targetDir, signal));
  }

  private async snapshotNow(handle: SandboxHandle, targetDir: string, signal?: AbortSignal): Promise<void> {
    await mkdir(targetDir, { recursive: true, mode: 0o700 });
    const copy = (): Promise<void> =>
      copyTree(join(this.diskDir(handle.sandboxId), "upper"), join(targetDir, "upper"));
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    if (meta.frozen === true) {
      await copy();
      return;
    }
    if (meta.network !== "egress") {
      await this.withSourceStopped(handle, signal, copy);
      return;
    }
    // Frozen, not checkpointed (see pause): its files hold still all the same.
    await this.pause(handle, dir, signal);
    try {
      await copy();
    } finally {
      await this.unpause(handle, dir);
    }
  }

  /**
   * Each fork restores the sandbox's checkpoint (its processes and memory) over its own copy of
   * the sandbox's disk, taken at the checkpoint; a fork keeps the source's limits. Either all
   * forks start or none is left.
   */
  fork(handle: SandboxHandle, specs: SandboxSpec[], signal?: AbortSignal): Promise<SandboxHandle[]> {
    return this.locks.run(handle.sandboxId, () => this.forkNow(handle, specs, signal));
  }

  private async forkNow(
    handle: SandboxHandle,
    specs: SandboxSpec[],
    signal?: AbortSignal,
  ): Promise<SandboxHandle[]> {
    const sourceDir = this.dirOf(handle);
    const source = await this.requireMeta(handle, sourceDir);
    if (source.network === "egress") {
      throw new PolydevError(
        "feature_unavailable",
        `the gvisor driver cannot fork a sandbox with network "egress": this runsc restores the Sentry's network stack without its interfaces`,
      );
    }
    for (const spec of specs) {
      if (!SANDBOX_ID.test(spec.id)) {
        throw new PolydevError("invalid_request", "sandbox ids are letters, digits, '.', '_' and '-'");
      }
      if (spec.image !== undefined && spec.image.digest !== source.imageDigest) {
        throw new PolydevError(
          "invalid_request",
          `fork ${spec.id} must have the image of the sandbox it forks`,
        );
      }
      if ((spec.network === "egress" ? "egress" : "none") !== (source.network ?? "none")) {
        throw new PolydevError(
          "invalid_request",
          `fork ${spec.id} must have the network of the sandbox it forks`,
        );
      }
    }
    const imageDir = join(sourceDir, `fork-${randomBytes(4).toString("hex")}`);
    const made: SandboxHandle[] = [];
    try {
      await this.withSourceStopped(handle, signal, async (checkpoint) => {
        await cp(checkpoint, imageDir, { recursive: true });
        for (const spec of specs) {
          made.push(await this.claimSandboxDir(spec.id));
          await this.prepareFork(handle.sandboxId, spec.id, source);
        }
      });
      for (const fork of made) {
        const dir = this.sandboxDir(fork.sandboxId);
        await this.restore(fork.sandboxId, dir, imageDir, await this.requireMeta(fork, dir), signal);
        await this.writeMeta(dir, { ...(await this.requireMeta(fork, dir)), hibernated: false });
      }
      return made;
    } catch (error) {
      for (const fork of made) await this.destroy(fork).catch(() => undefined);
      throw error;
    } finally {
      await rm(imageDir, { recursive: true, force: true });
    }
  }

  /**
   * Runs `use` with the source checkpointed (given its image) and brings it back
   * afterwards, whatever `use` did. A hibernated source is used as it is.
   */
  private async withSourceStopped(
    handle: SandboxHandle,
    signal: AbortSignal | undefined,
    use: (checkpoint: string) => Promise<void>,
  ): Promise<void> {
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    const checkpoint = join(dir, CHECKPOINT_DIR);
    if (meta.hibernated) {
      await use(checkpoint);
      return;
    }
    await this.checkpoint(handle, dir, signal);
    const stopped = { ...meta, hibernated: true };
    await this.writeMeta(dir, stopped);
    try {
      await use(checkpoint);
    } finally {
      await this.restore(handle.sandboxId, dir, checkpoint, stopped);
      await rm(checkpoint, { recursive: true, force: true });
      await this.writeMeta(dir, meta);
    }
  }

  /** A fork's directory, disk (a copy of the source's) and root, and its bundle. */
  private async claimSandboxDir(sandboxId: string): Promise<SandboxHandle> {
    try {
      await mkdir(this.sandboxDir(sandboxId), { mode: 0o700 });
    } catch (error) {
      throw new PolydevError("conflict", `sandbox ${sandboxId} already exists`, { cause: error });
    }
    return { sandboxId, driver: this.name, data: { containerId: sandboxId } };
  }

  private async prepareFork(sourceId: string, forkId: string, source: SandboxMeta): Promise<void> {
    const dir = this.sandboxDir(forkId);
    const meta: SandboxMeta = { ...source, sandboxId: forkId, containerId: forkId, hibernated: true };
    await this.writeMeta(dir, meta);
    const disk = this.diskDir(forkId);
    const rootfs = this.rootfsDir(forkId);
    await mkdir(disk, { recursive: true, mode: 0o700 });
    await mkdir(rootfs, { recursive: true, mode: 0o755 });
    const sourceDisk = await statfs(this.diskDir(sourceId));
    await mountCommand([
      "-t",
      "tmpfs",
      "-o",
      `size=${sourceDisk.blocks * sourceDisk.bsize},mode=0700`,
      "tmpfs",
      disk,
    ]);
    await copyTree(join(this.diskDir(sourceId), "upper"), join(disk, "upper"));
    await mkdir(join(disk, "work"), { mode: 0o700 });
    await mkdir(join(disk, "socket"), { mode: 0o755 });
    await mountOverlay(source.lowerDirs ?? [], disk, rootfs);
    const config = JSON.parse(
      await readFile(join(this.sandboxDir(sourceId), "bundle", "config.json"), "utf8"),
    ) as ForkableSpec;
    await mkdir(join(dir, "bundle"), { mode: 0o700 });
    await writeFile(
      join(dir, "bundle", "config.json"),
      JSON.stringify(
        await this.withNetwork(
          dir,
          meta,
          retarget(config, {
            rootfs,
            socketDir: join(disk, "socket"),
            cgroupsPath: `/${this.options.cgroupParent}/${forkId}`,
          }),
        ),
      ),
      { mode: 0o600 },
    );
  }

  private async requireMeta(handle: SandboxHandle, dir: string): Promise<SandboxMeta> {
    const meta = await this.readMeta(dir);
    if (meta === undefined) throw new PolydevError("not_found", `sandbox ${handle.sandboxId} does not exist`);
    return meta;
  }

  destroy(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    return this.locks.run(handle.sandboxId, () => this.destroyNow(handle, signal));
  }

  private async destroyNow(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    const dir = this.dirOf(handle);
    this.handedOver.drop(handle.sandboxId);
    if (!existsSync(dir) && !existsSync(join(this.options.rootDir, "mounts", handle.sandboxId))) return;
    // slirp4netns first: it sits in the sandbox's cgroups, which runsc removes on delete.
    await tearDownEgressNetwork(dir);
    // A paused sandbox must be resumable to be killed cleanly; delete --force kills either way.
    await runsc(this.runsc, ["delete", "--force", handle.sandboxId], {
      logFile: join(this.options.rootDir, "runsc-delete.log"),
      ...(signal ? { signal } : {}),
    });
    await unmountIfMounted(this.rootfsDir(handle.sandboxId));
    await unmountIfMounted(this.diskDir(handle.sandboxId));
    await rm(join(this.options.rootDir, "mounts", handle.sandboxId), { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * An "egress" sandbox's spec with the network namespace built for it (egress-network.ts);
   * "none" keeps runsc's own empty one.
   */
  private async withNetwork<T extends { linux?: unknown }>(
    dir: string,
    meta: SandboxMeta,
    config: T,
    signal?: AbortSignal,
  ): Promise<T> {
    if (meta.network !== "egress") return config;
    const network = await setUpEgressNetwork(dir, signal);
    const linux = config.linux as { namespaces: { type: string; path?: string }[] };
    return {
      ...config,
      linux: {
        ...linux,
        namespaces: linux.namespaces.map((namespace) =>
          namespace.type === "network" ? { type: "network", path: network.sandboxNetns } : namespace,
        ),
      },
    };
  }

  async list(signal?: AbortSignal): Promise<ObservedSandbox[]> {
    let ids: string[];
    try {
      ids = await readdir(join(this.options.rootDir, "sandboxes"));
    } catch {
      return [];
    }
    const states = await this.containerStates(signal);
    const observed: ObservedSandbox[] = [];
    for (const id of ids.filter((id) => SANDBOX_ID.test(id))) {
      observed.push({
        sandboxId: id,
        handle: { sandboxId: id, driver: this.name, data: { containerId: id } },
        alive: isLiveStatus(states.get(id)) || (await this.isCheckpointed(id)),
      });
    }
    return observed;
  }

  private async containerStates(signal?: AbortSignal): Promise<Map<string, string>> {
    const result = await runsc(this.runsc, ["list", "--format=json"], signal ? { signal } : {});
    const states = new Map<string, string>();
    if (result.code !== 0) return states;
    const parsed: unknown = JSON.parse(result.stdout.trim() || "[]");
    if (!Array.isArray(parsed)) return states;
    for (const entry of parsed) {
      if (typeof entry === "object" && entry !== null && "id" in entry && "status" in entry) {
        states.set(String(entry.id), String(entry.status));
      }
    }
    return states;
  }

  /** A hibernated sandbox is alive in its checkpoint: nothing runs, but resume brings it back. */
  async isAlive(handle: SandboxHandle, signal?: AbortSignal): Promise<boolean> {
    if (!SANDBOX_ID.test(handle.sandboxId)) return false;
    if (await this.containerAlive(handle, signal)) return true;
    return this.isCheckpointed(handle.sandboxId);
  }

  private async isCheckpointed(sandboxId: string): Promise<boolean> {
    const dir = this.sandboxDir(sandboxId);
    const meta = await this.readMeta(dir);
    return meta?.hibernated === true && existsSync(join(dir, CHECKPOINT_DIR));
  }

  /** Whether runsc has the sandbox's container running (or paused). */
  private async containerAlive(handle: SandboxHandle, signal?: AbortSignal): Promise<boolean> {
    if (!SANDBOX_ID.test(handle.sandboxId)) return false;
    const result = await runsc(this.runsc, ["state", handle.sandboxId], signal ? { signal } : {});
    if (result.code !== 0) return false;
    try {
      const state = JSON.parse(result.stdout) as { status?: unknown };
      return isLiveStatus(String(state.status));
    } catch {
      return false;
    }
  }

  async stats(handle: SandboxHandle, signal?: AbortSignal): Promise<SandboxStats> {
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    const disk = await statfs(this.diskDir(handle.sandboxId));
    // A checkpointed guest has no Sentry to ask and runs nothing: its CPU time is the one taken
    // at the checkpoint, and it holds no memory or processes. A frozen one (network "egress")
    // still has both, but its CPU time is the one taken when it was paused (the Sentry's own
    // bookkeeping still ticks).
    const guest =
      meta.hibernated && meta.frozen !== true
        ? { cpuUsageNs: meta.pausedCpuUsageNs ?? 0, memoryBytes: 0, pids: 0 }
        : await this.sentryStats(handle, dir, signal);
    return {
      cpuUsageNs: meta.hibernated ? (meta.pausedCpuUsageNs ?? guest.cpuUsageNs) : guest.cpuUsageNs,
      memoryBytes: Math.min(guest.memoryBytes, meta.memoryLimitBytes),
      memoryLimitBytes: meta.memoryLimitBytes,
      pids: guest.pids,
      diskBytes: (disk.blocks - disk.bfree) * disk.bsize,
    };
  }

  /** The Sentry's own accounting: the guest's tasks, memory and CPU, not its host threads. */
  private async sentryStats(
    handle: SandboxHandle,
    dir: string,
    signal?: AbortSignal,
  ): Promise<{ cpuUsageNs: number; memoryBytes: number; pids: number }> {
    const output = await runscOk(this.runsc, ["events", "--stats", handle.sandboxId], {
      logFile: this.logFile(dir),
      ...(signal ? { signal } : {}),
    });
    const event = JSON.parse(output) as {
      data?: {
        cpu?: { usage?: { total?: number } };
        memory?: { usage?: { usage?: number } };
        pids?: { current?: number };
      };
    };
    return {
      cpuUsageNs: event.data?.cpu?.usage?.total ?? 0,
      memoryBytes: event.data?.memory?.usage?.usage ?? 0,
      pids: event.data?.pids?.current ?? 0,
    };
  }

  async logs(handle: SandboxHandle): Promise<string> {
    return this.tail(this.dirOf(handle));
  }

  /** The end of runsc's log and the Sentry's panic log: why a sandbox failed. */
  private async tail(dir: string): Promise<string> {
    const parts: string[] = [];
    for (const name of ["runsc.log", "panic.log"]) {
      const text = await readTail(join(dir, name), MAX_LOG_BYTES / 2);
      if (text.length > 0) parts.push(text);
    }
    return parts.join("\n");
  }
}

function isLiveStatus(status: string | undefined): boolean {
  return status === "running" || status === "paused" || status === "created";
}

/** The adopted environment (none when the sandbox was never a spare): string values only. */
async function readAdoptedEnv(dir: string): Promise<Record<string, string>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(dir, ADOPTED_ENV_FILE), "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new PolydevError("sandbox_failed", "the sandbox's adopted environment is unreadable", {
      cause: error,
    });
  }
  const env: Record<string, string> = {};
  if (typeof parsed === "object" && parsed !== null) {
    for (const [key, value] of Object.entries(parsed)) if (typeof value === "string") env[key] = value;
  }
  return env;
}

async function readTail(path: string, maxBytes: number): Promise<string> {
  let file: Awaited<ReturnType<typeof open>> | undefined;
  try {
    file = await open(path, "r");
    const { size } = await file.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await file.read(buffer, 0, length, size - length);
    return buffer.toString("utf8");
  } catch {
    return "";
  } finally {
    await file?.close();
  }
}

async function mountCommand(args: string[]): Promise<void> {
  try {
    await execFileAsync("mount", args, { env: { PATH: HOST_PATH } });
  } catch (error) {
    throw new PolydevError("sandbox_failed", `cannot mount the sandbox's file system: ${String(error)}`, {
      cause: error,
    });
  }
}

/** The sandbox's root: its layers under the upper directory on its disk. */
async function mountOverlay(lowerDirs: string[], disk: string, rootfs: string): Promise<void> {
  await mountCommand([
    "-t",
    "overlay",
    "-o",
    `lowerdir=${lowerDirs.join(":")},upperdir=${join(disk, "upper")},workdir=${join(disk, "work")}`,
    "overlay",
    rootfs,
  ]);
}

/** cp -a: owners, modes and times kept (the upper directory's are the sandbox's own). */
async function copyTree(from: string, to: string): Promise<void> {
  await execFileAsync("cp", ["-a", "--reflink=auto", from, to], { env: { PATH: HOST_PATH } }).catch(
    (error: unknown) => {
      throw new PolydevError("sandbox_failed", `cannot copy the sandbox's disk: ${String(error)}`, {
        cause: error,
      });
    },
  );
}

async function unmountIfMounted(path: string): Promise<void> {
  if (!existsSync(path)) return;
  await execFileAsync("umount", [path], { env: { PATH: HOST_PATH } }).catch(async () => {
    // Busy (a runsc gofer still exiting): detach it, the kernel finishes when it lets go.
    await execFileAsync("umount", ["-l", path], { env: { PATH: HOST_PATH } }).catch(() => undefined);
  });
}
