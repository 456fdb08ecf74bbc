/**
 * The `microvm` driver: each sandbox is a virtual machine (its own guest kernel) restored from
 * its image's boot snapshot. The guest's root is the image as a read-only ext4 shared by every
 * sandbox of the image, under an overlay whose upper layer is the sandbox's own changes disk
 * (a qcow2 whose virtual size is the sandbox's disk bound). The agent runs in the guest's
 * initramfs and is reached over one virtio-serial port the server process holds (host-link.ts).
 *
 * Per sandbox on the host: one QEMU process (its own unprivileged uid, a host cgroup, seccomp),
 * a root-owned directory with its metadata, and a run directory of the QEMU's uid with its
 * sockets and changes disk. Nothing else of Polydev's runs per sandbox.
 */
import { randomBytes, randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { appendFile, chmod, chown, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type {
  AgentConnection,
  DriverInfo,
  ObservedSandbox,
  SandboxDriver,
  SandboxHandle,
  SandboxImage,
  SandboxSpec,
  SandboxStats,
} from "@polydev/core";
import { HandedOverConnections, PolydevError } from "@polydev/core";
import { imagePasswdEntry } from "@polydev/images";
import type { SnapshotShape } from "./boot-snapshot.js";
import { ensureBootSnapshot, snapshotRamFile, vmConfig } from "./boot-snapshot.js";
import type { CachePruneResult } from "./cache-pruning.js";
import { holdCacheEntries, pruneCache, releaseCacheEntries } from "./cache-pruning.js";
import { cacheEntryOf, cacheReferences } from "./cache-references.js";
import {
  createChangesDisk,
  ensureEmptyDisk,
  ensureImageDisk,
  ensureToolboxDisk,
  imageDiskPath,
} from "./disks.js";
import { forkSandboxes } from "./fork.js";
import { sweepLayers } from "./fork-layers.js";
import { hibernatedStateOptions } from "./fork-ram.js";
import { consoleSection, consoleSocket, GuestConsole } from "./guest-console.js";
import { ensureGuestInitramfs } from "./guest-initramfs.js";
import { ensureGuestKernel } from "./guest-kernel.js";
import {
  ensureGuestNetwork,
  guestNetworkMissing,
  guestNetworkRequest,
  guestVmNetwork,
  setUpGuestNetwork,
  tearDownGuestNetwork,
} from "./guest-network.js";
import { GuestRam } from "./guest-ram.js";
import {
  createHostCgroup,
  hostCgroupMemory,
  hostCgroupProcs,
  joinHostCgroup,
  removeHostCgroup,
} from "./host-cgroup.js";
import { AgentLink } from "./host-link.js";
import { parseStats } from "./link-protocol.js";
import type { QemuAccel } from "./qemu-vmm.js";
import { isQemuOf, QemuVmm, TCG_CACHE_MB, tail } from "./qemu-vmm.js";
import { RestoreSlots } from "./restore-slots.js";
import { checkVmSocket } from "./vm-socket.js";
import type { RunningVm, StateOptions, VmConfig, Vmm } from "./vmm.js";

const MiB = 1024 * 1024;
/** The smallest changes disk, whatever the image's size (ext4 needs some room of its own). */
const MIN_CHANGES_BYTES = 8 * MiB;
const MAX_LOG_BYTES = 64 * 1024;
/**
 * Each sandbox's QEMU runs as its own uid from this range (and the same gid), so two VMs'
 * processes cannot signal or ptrace each other (this host has no Yama). The boot snapshot's
 * template uses FIRST_VM_UID itself.
 */
export const FIRST_VM_UID = 1_600_000_000;
const VM_UID_COUNT = 100_000_000;
/**
 * Guest RAM on top of the sandbox's memory: the guest kernel and the agent live there, outside
 * the sandbox's cgroup (whose memory.max is the sandbox's memoryMb).
 */
const GUEST_OVERHEAD_MB = 192;
/** Guest RAM is rounded up to this, so sandboxes of nearby sizes share one boot snapshot. */
const GUEST_RAM_STEP_MB = 256;
/**
 * Host memory a QEMU process needs besides its guest's RAM: its devices and own heap (128 MiB),
 * and under TCG the translation cache, filled as the guest runs new code.
 */
const qemuOverheadMb = (accel: string): number => 128 + (accel === "tcg" ? TCG_CACHE_MB : 64);
/**
 * Flags that keep TCG boots reliable (measured, MACHINE-NOTES): without a known TSC and loops
 * per jiffy, one boot in ten hangs calibrating.
 */
const KERNEL_CMDLINE =
  "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init 8250.nr_uarts=1 tsc=reliable no_timer_check tsc_early_khz=2596104 lpj=10384416";

/** The largest disk a sandbox may have (see SnapshotShape.templateDiskBytes). */
export const MAX_DISK_BYTES = 1024 * 1024 * MiB;

const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
/** How often sealed RAM copies unused for the cache's idle time are let go. */
const RAM_RELEASE_INTERVAL_MS = 10 * 60_000;
/** Creates look at the cache's size at most this often (a pruning walks the cache's entries). */
const PRUNE_INTERVAL_MS = 60_000;

export interface MicrovmDriverOptions {
  /** The driver's state (each sandbox's directory). Root-owned. */
  rootDir: string;
  /** Shared host cache of kernels, initramfs, disks and boot snapshots; default /var/cache/polydev/microvm. */
  cacheDir?: string;
  /** The toolbox directory (node for the agent), as for the gvisor driver. */
  toolboxDir: string | (() => string | undefined);
  /**
   * "tcg" (default: software, works on any host) or "kvm". Not probed automatically: a
   * paravirtual /dev/kvm (these build machines) makes stock guest kernels die, so KVM is an
   * operator's explicit choice on a host where it is real.
   */
  accel?: QemuAccel;
  /** Another VMM (Firecracker); default QEMU's microvm machine with `accel`. */
  vmm?: Vmm;
  /** The host cgroup each QEMU's cgroup is made under; default "polydev-microvm". */
  cgroupParent?: string;
  /** How long the template's first boot may take; default 180 000 ms (TCG on a busy host). */
  bootTimeoutMs?: number;
  /** How long a restore may take to the agent's answer; default 60 000 ms. */
  readyTimeoutMs?: number;
  /** The host cache's size to stay within (cache-pruning.ts); default 20 GiB. */
  cacheMaxBytes?: number;
  /** A cache entry used more recently is never pruned; default one hour. */
  cacheMinIdleMs?: number;
  /** A cache entry unused this long is pruned whatever the size; default 30 days. */
  cacheMaxIdleMs?: number;
}

export interface SandboxMeta {
  sandboxId: string;
  uid: number;
  pid: number;
  memoryLimitBytes: number;
  shape: SnapshotShape;
  hibernated: boolean;
  pausedCpuUsageNs?: number;
  /** "egress": a NIC on the sandbox's router network (guest-network.ts). Absent: none. */
  network?: "egress";
  /** The changes disk's file QEMU writes, in the run directory (fork.ts); default changes.qcow2. */
  top?: string;
  /** The frozen layers below it, shared with forks (fork-layers.ts). */
  layers?: string[];
  /**
   * The hibernated state was saved without x-ignore-shared (so a fork can move its RAM into a
   * file, fork-ram.ts). Absent: saved with it where the RAM is a file (before this existed).
   */
  hibernatedPlain?: true;
}

/** How a VM is started from a state (startVm). */
export interface StartOptions {
  signal?: AbortSignal | undefined;
  /** A resume under the same server: the link carries on over the restored VM. */
  suspended?: AgentLink;
  /** The RAM a devices-only state restores over (a fork's, fork-ram.ts). */
  ramFile?: string | undefined;
  /** How the state was saved. */
  state?: StateOptions;
}

export class MicrovmDriver implements SandboxDriver {
  readonly name = "microvm";
  private readonly options: Readonly<Required<Omit<MicrovmDriverOptions, "vmm">> & { vmm: Vmm }>;
  private readonly links = new Map<string, Promise<AgentLink>>();
  private readonly vms = new Map<string, RunningVm>();
  private readonly handedOver = new HandedOverConnections();
  /**
   * The kernel and initramfs, looked up once per driver: finding them asks apt and bundles the
   * agent, seconds that must not be on every create's path.
   */
  private guest: Promise<{ kernel: string; initrd: string }> | undefined;
  /** The tail of each VM's serial console (guest-console.ts). */
  private readonly console = new GuestConsole();
  /** The sealed copies of boot snapshots' RAM every restore maps (guest-ram.ts). */
  private readonly guestRam: GuestRam;
  /** The cache's pruning in progress, and when the last one started (see pruneLater). */
  private pruning: Promise<CachePruneResult> | undefined;
  private prunedAt = 0;
  /** VMs restoring (and activating) at once: two per host core. */
  private readonly restoring = new RestoreSlots(Math.max(2, 2 * availableParallelism()));

  constructor(options: MicrovmDriverOptions) {
    const accel = options.accel ?? "tcg";
    this.options = Object.freeze({
      cacheDir: "/var/cache/polydev/microvm",
      accel,
      cgroupParent: "polydev-microvm",
      bootTimeoutMs: 180_000,
      readyTimeoutMs: 60_000,
      cacheMaxBytes: 20 * 1024 * MiB,
      cacheMinIdleMs: 3_600_000,
      cacheMaxIdleMs: 30 * 24 * 3_600_000,
      ...options,
      vmm: options.vmm ?? new QemuVmm({ accel }),
    });
    this.guestRam = new GuestRam(this.options.cacheDir);
    // Sealed RAM copies no restore used for the cache's idle time are let go, busy server or not.
    const guestRam = this.guestRam;
    const idleMs = this.options.cacheMinIdleMs;
    setInterval(() => guestRam.release(idleMs), RAM_RELEASE_INTERVAL_MS).unref();
  }

  private toolboxDir(): string | undefined {
    const toolbox = this.options.toolboxDir;
    return typeof toolbox === "function" ? toolbox() : toolbox;
  }

  async probe(): Promise<DriverInfo> {
    const missing: string[] = [];
    const vmm = await this.options.vmm.unavailable();
    if (vmm !== undefined) missing.push(vmm);
    if (!existsSync("/bin/busybox")) missing.push("busybox-static (apt-get install busybox-static)");
    if (!existsSync("/usr/bin/cpio")) missing.push("cpio (apt-get install cpio)");
    if (!existsSync("/usr/sbin/mkfs.ext4")) missing.push("e2fsprogs (mkfs.ext4)");
    if (process.getuid?.() !== 0)
      missing.push("root (QEMU runs as a per-sandbox uid, disks are chowned to it)");
    const toolbox = this.toolboxDir();
    if (toolbox === undefined || !existsSync(toolbox))
      missing.push("the toolbox (node for the in-guest agent)");
    if (missing.length > 0) {
      throw new PolydevError("driver_unavailable", `the microvm driver needs ${missing.join(", ")}`, {
        details: { missing },
      });
    }
    const egress = this.options.vmm.networks && guestNetworkMissing() === undefined ? ["egress"] : [];
    const fork = this.options.vmm.forks === true ? ["fork"] : [];
    this.pruneLater();
    return { name: this.name, features: ["images", "hibernate", "hibernate-memory", ...egress, ...fork] };
  }

  /**
   * Prunes the host cache now (cache-pruning.ts), keeping what this driver's sandboxes and its
   * current guest need. (Sealed RAM copies are let go by the constructor's timer.)
   */
  pruneCache(): Promise<CachePruneResult> {
    if (this.pruning !== undefined) return this.pruning;
    this.prunedAt = Date.now();
    const pruning = (async () => {
      const keep = await this.cacheReferences();
      return pruneCache(this.options.cacheDir, {
        maxBytes: this.options.cacheMaxBytes,
        minIdleMs: this.options.cacheMinIdleMs,
        maxIdleMs: this.options.cacheMaxIdleMs,
        keep,
      });
    })();
    this.pruning = pruning;
    pruning.then(
      () => (this.pruning = undefined),
      () => (this.pruning = undefined),
    );
    return pruning;
  }

  /** The cache entries this driver needs: its sandboxes' (cache-references.ts) and its guest's. */
  async cacheReferences(): Promise<Set<string>> {
    const ids = await readdir(join(this.options.rootDir, "sandboxes")).catch(() => [] as string[]);
    const sandboxes = [];
    for (const id of ids.filter((entry) => SANDBOX_ID.test(entry))) {
      const meta = await this.readMeta(this.sandboxDir(id));
      if (meta === undefined) continue;
      sandboxes.push({ shape: meta.shape, top: join(this.runDir(id), meta.top ?? "changes.qcow2") });
    }
    const keep = await cacheReferences(this.options.cacheDir, sandboxes);
    // Looked up once per driver and not again (ensureGuest): it must outlive any idle time.
    const guest = await this.guest?.catch(() => undefined);
    if (guest !== undefined) {
      for (const path of [guest.kernel, guest.initrd]) {
        const entry = cacheEntryOf(this.options.cacheDir, path);
        if (entry !== undefined) keep.add(entry);
      }
    }
    return keep;
  }

  /** Marks the cache entries the sandbox needs as held by it (cache-pruning.ts). */
  private async holdCache(meta: SandboxMeta): Promise<void> {
    const top = join(this.runDir(meta.sandboxId), meta.top ?? "changes.qcow2");
    const entries = await cacheReferences(this.options.cacheDir, [{ shape: meta.shape, top }]);
    await holdCacheEntries(this.options.cacheDir, this.sandboxDir(meta.sandboxId), entries);
  }

  /**
   * A pruning after a create, at most once a PRUNE_INTERVAL_MS. One that fails (an entry it
   * could not read or remove) ends only itself: the next create's tries again.
   */
  private pruneLater(): void {
    if (this.pruning !== undefined || Date.now() - this.prunedAt < PRUNE_INTERVAL_MS) return;
    this.pruneCache().catch(() => undefined);
  }

  private sandboxDir(sandboxId: string): string {
    return join(this.options.rootDir, "sandboxes", sandboxId);
  }

  private dirOf(handle: SandboxHandle): string {
    if (!SANDBOX_ID.test(handle.sandboxId))
      throw new PolydevError("invalid_request", "not a microvm sandbox id");
    return this.sandboxDir(handle.sandboxId);
  }

  /** The VM shape of a spec: everything its boot snapshot depends on. */
  private async shapeOf(
    image: SandboxImage,
    memoryMb: number,
    cpu: number,
    signal?: AbortSignal,
  ): Promise<SnapshotShape> {
    const toolbox = this.toolboxDir();
    if (toolbox === undefined) {
      throw new PolydevError(
        "driver_unavailable",
        "the microvm driver needs the toolbox, which is not built yet",
      );
    }
    const cacheDir = this.options.cacheDir;
    const [guest, rootDisk, toolboxDisk, emptyDisk] = await Promise.all([
      this.ensureGuest(),
      ensureImageDisk(cacheDir, image.digest, image.layers),
      ensureToolboxDisk(cacheDir, toolbox),
      ensureEmptyDisk(cacheDir, 64 * MiB),
    ]);
    signal?.throwIfAborted();
    return {
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: KERNEL_CMDLINE,
      rootDisk,
      toolboxDisk,
      emptyDisk,
      templateDiskBytes: MAX_DISK_BYTES,
      memoryMb: Math.ceil(memoryMb / GUEST_RAM_STEP_MB) * GUEST_RAM_STEP_MB + GUEST_OVERHEAD_MB,
      vcpus: Math.max(1, Math.ceil(cpu)),
      accel: this.options.accel,
      sharedRam: this.options.vmm.name === "qemu",
    };
  }

  private ensureGuest(): Promise<{ kernel: string; initrd: string }> {
    if (this.guest === undefined) {
      const cacheDir = this.options.cacheDir;
      this.guest = (async () => {
        const kernel = await ensureGuestKernel(cacheDir);
        const initramfs = await ensureGuestInitramfs(cacheDir, kernel);
        return { kernel: kernel.vmlinuz, initrd: initramfs.path };
      })();
      // A failed lookup (apt unreachable) is tried again by the next create.
      this.guest.catch(() => {
        this.guest = undefined;
      });
    }
    return this.guest;
  }

  private async pickUid(): Promise<number> {
    const used = new Set<number>();
    for (const id of await readdir(join(this.options.rootDir, "sandboxes")).catch(() => [] as string[])) {
      const meta = await this.readMeta(this.sandboxDir(id));
      if (meta) used.add(meta.uid);
    }
    for (;;) {
      const uid = FIRST_VM_UID + 1 + randomInt(VM_UID_COUNT - 1);
      if (!used.has(uid)) return uid;
    }
  }

  /**
   * The QEMU's own directory (its uid's): sockets, stderr log and the changes disk, which grows
   * with what the sandbox writes up to its disk bound. Apart from the driver's state.
   */
  private runDir(sandboxId: string): string {
    return join(this.options.rootDir, "vms", sandboxId);
  }

  private configOf(meta: SandboxMeta, incoming: boolean): VmConfig {
    const runDir = this.runDir(meta.sandboxId);
    return {
      ...vmConfig(meta.shape, runDir, join(runDir, meta.top ?? "changes.qcow2"), {
        uid: meta.uid,
        gid: meta.uid,
      }),
      incoming,
      ...(meta.network === "egress" ? { network: guestVmNetwork(this.sandboxDir(meta.sandboxId)) } : {}),
    };
  }

  async create(spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    const image = spec.image;
    if (image === undefined) {
      throw new PolydevError(
        "invalid_request",
        "the microvm driver runs image sandboxes only: give an image",
      );
    }
    const egress = spec.network === "egress";
    if (spec.network !== "none" && !egress) {
      throw new PolydevError(
        "feature_unavailable",
        `the microvm driver offers networks "none" and "egress" (an allow-list needs the guest's connections intercepted and carried over the agent, which its guest agent cannot do yet)`,
      );
    }
    if (egress && !this.options.vmm.networks) {
      throw new PolydevError(
        "feature_unavailable",
        `network "egress" needs the QEMU VMM: ${this.options.vmm.name} VMs get no NIC from this driver`,
      );
    }
    const egressMissing = egress ? guestNetworkMissing() : undefined;
    if (egressMissing !== undefined) {
      throw new PolydevError("feature_unavailable", `network "egress" needs ${egressMissing}`);
    }
    if (!SANDBOX_ID.test(spec.id)) {
      throw new PolydevError("invalid_request", "sandbox ids are letters, digits, '.', '_' and '-'");
    }
    if (spec.limits.diskMb * MiB > MAX_DISK_BYTES) {
      throw new PolydevError(
        "invalid_request",
        `the microvm driver's disks are at most ${MAX_DISK_BYTES / MiB} MiB`,
      );
    }
    const user = imageUser(image);
    const changesBytes = Math.max(MIN_CHANGES_BYTES, spec.limits.diskMb * MiB - (image.sizeBytes ?? 0));
    // Disk preparation runs alongside the snapshot lookup: the create path itself is QEMU's
    // start, the incoming restore and one activation round trip.
    const [plainShape, emptyDisk] = await Promise.all([
      this.shapeOf(image, spec.limits.memoryMb, spec.limits.cpu, signal),
      ensureEmptyDisk(this.options.cacheDir, Math.ceil(changesBytes / MiB) * MiB),
    ]);
    // An egress sandbox restores from a snapshot of a VM with a NIC (the NIC is a saved device).
    const shape: SnapshotShape = egress ? { ...plainShape, nic: true } : plainShape;
    const snapshot = await ensureBootSnapshot({
      cacheDir: this.options.cacheDir,
      vmm: this.options.vmm,
      shape,
      uid: FIRST_VM_UID,
      bootTimeoutMs: this.options.bootTimeoutMs,
      signal,
    });

    await mkdir(join(this.options.rootDir, "sandboxes"), { recursive: true, mode: 0o711 });
    await mkdir(join(this.options.rootDir, "vms"), { recursive: true, mode: 0o711 });
    await chmod(this.options.rootDir, 0o711);
    const dir = this.sandboxDir(spec.id);
    try {
      await mkdir(dir, { mode: 0o711 });
    } catch (error) {
      throw new PolydevError("conflict", `sandbox ${spec.id} already exists`, { cause: error });
    }
    const handle: SandboxHandle = { sandboxId: spec.id, driver: this.name, data: {} };
    let releaseSlot: (() => void) | undefined;
    try {
      const uid = await this.pickUid();
      const meta: SandboxMeta = {
        sandboxId: spec.id,
        uid,
        pid: 0,
        memoryLimitBytes: spec.limits.memoryMb * MiB,
        shape,
        hibernated: false,
        ...(egress ? { network: "egress" as const } : {}),
      };
      await this.writeMeta(dir, meta);
      const config = this.configOf(meta, true);
      await mkdir(config.runDir, { mode: 0o700 });
      await chown(config.runDir, uid, uid);
      const changes = join(config.runDir, "changes.qcow2");
      await createChangesDisk(emptyDisk, changes);
      await chown(changes, uid, uid);
      await chmod(changes, 0o600);
      await this.holdCache(meta);
      await createHostCgroup(this.options.cgroupParent, spec.id, hostLimits(shape, spec.limits.cpu));
      if (egress) {
        await setUpGuestNetwork(
          dir,
          { uid, gid: uid },
          hostCgroupProcs(this.options.cgroupParent, spec.id),
          signal,
        );
      }
      const release = await this.restoring.acquire(signal);
      releaseSlot = release;
      const link = await this.startVm(meta, config, snapshot, { signal });
      const activated = link.request(
        {
          type: "activate",
          env: {
            PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ...image.env,
            ...spec.env,
          },
          uid: user.uid,
          gid: user.gid,
          home: user.home,
          memoryBytes: spec.limits.memoryMb * MiB,
          pidsMax: spec.limits.pidsMax,
          cpuQuotaUs: Math.max(1000, Math.round(spec.limits.cpu * 100_000)),
          // /tmp and /dev/shm: memory the sandbox's cgroup is charged for, each at most half of it.
          tmpBytes: Math.max(MiB, Math.floor((spec.limits.memoryMb * MiB) / 2)),
          nowMs: Date.now(),
          seed: randomBytes(64).toString("hex"),
        },
        this.options.readyTimeoutMs,
      );
      // Opened right behind the activate request: the guest serves it once the sandbox is ready
      // (guest-agent.ts), so its hello overlaps the activation instead of following it. Only a
      // head start for the first connect: without it, create still stands.
      const first = link.connect(signal);
      first.catch(() => undefined);
      await activated;
      if (egress) await link.request(guestNetworkRequest(), this.options.readyTimeoutMs);
      release();
      const connection = await first.catch(() => undefined);
      if (connection !== undefined) this.handedOver.keep(spec.id, connection);
      this.pruneLater();
      return handle;
    } catch (error) {
      releaseSlot?.();
      await this.note(dir, `create failed: ${error instanceof Error ? error.message : String(error)}`);
      await this.destroy(handle).catch(() => undefined);
      throw error;
    }
  }

  /** QEMU started waiting for a state, the state streamed in, the link reset: the agent answers. */
  private async startVm(
    meta: SandboxMeta,
    config: VmConfig,
    stateFile: string,
    { signal, suspended, ramFile, state }: StartOptions = {},
  ): Promise<AgentLink> {
    const vm = await this.options.vmm.start(await this.withGuestRam(meta, config, signal, ramFile), signal);
    this.vms.set(meta.sandboxId, vm);
    // QEMU made its sockets before answering on its control socket: this is its own.
    this.console.follow(meta.sandboxId, consoleSocket(config.runDir), true);
    vm.exited.then(() => {
      if (this.vms.get(meta.sandboxId) === vm) this.vms.delete(meta.sandboxId);
    });
    await joinHostCgroup(this.options.cgroupParent, meta.sandboxId, vm.pid).catch(async (error: unknown) => {
      await vm.kill();
      throw error;
    });
    await this.writeMeta(this.sandboxDir(meta.sandboxId), { ...meta, pid: vm.pid });
    if (suspended !== undefined) {
      // A resume under the same server: the link (and every connection on it) carries on over
      // the restored VM's socket, connected before the load so the guest never sees it go.
      await suspended.resumeOn(config.agentSocket);
      await vm.restore(stateFile, signal, state);
      return suspended;
    }
    // The link is attached before the state arrives: the guest reads the reset as soon as it runs.
    const linking = AgentLink.attach(config.agentSocket, {
      timeoutMs: this.options.readyTimeoutMs,
      ...(signal ? { signal } : {}),
    });
    linking.catch(() => undefined);
    await vm.restore(stateFile, signal, state);
    const link = await linking;
    this.keepLink(meta.sandboxId, link);
    return link;
  }

  /**
   * A shape with shared RAM restores over its boot snapshot's sealed RAM: the pages of that
   * snapshot's state, or (a resume, a fork: their states carry all the RAM) merely the right size.
   */
  private async withGuestRam(
    meta: SandboxMeta,
    config: VmConfig,
    signal?: AbortSignal,
    ramFile?: string,
  ): Promise<VmConfig> {
    if (config.memoryFile === undefined) return config;
    if (ramFile !== undefined) {
      // A fork's RAM (fork-ram.ts): its state is devices only, like a boot snapshot's.
      return { ...config, memoryFile: { ...config.memoryFile, fd: await this.guestRam.descriptor(ramFile) } };
    }
    const snapshot = await ensureBootSnapshot({
      cacheDir: this.options.cacheDir,
      vmm: this.options.vmm,
      shape: meta.shape,
      uid: FIRST_VM_UID,
      bootTimeoutMs: this.options.bootTimeoutMs,
      signal,
    });
    const fd = await this.guestRam.descriptor(snapshotRamFile(snapshot));
    return { ...config, memoryFile: { ...config.memoryFile, fd } };
  }

  private keepLink(sandboxId: string, link: AgentLink): void {
    const kept = Promise.resolve(link);
    this.links.set(sandboxId, kept);
    link.onClose(() => {
      if (this.links.get(sandboxId) === kept) this.links.delete(sandboxId);
    });
  }

  /** The link to a running sandbox's agent; attached again after a server restart. */
  private async link(handle: SandboxHandle, signal?: AbortSignal): Promise<AgentLink> {
    const existing = this.links.get(handle.sandboxId);
    if (existing !== undefined) {
      const link = await existing.catch(() => undefined);
      if (link?.alive) return link;
    }
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    if (meta.hibernated)
      throw new PolydevError("sandbox_not_running", `sandbox ${handle.sandboxId} is hibernated`);
    const config = this.configOf(meta, false);
    // Best effort: a VM without a console socket (another VMM) still has its agent.
    await checkVmSocket(consoleSocket(config.runDir), meta.uid).then(
      (socket) => this.console.follow(meta.sandboxId, socket),
      () => undefined,
    );
    const attaching = checkVmSocket(config.agentSocket, meta.uid).then((socket) =>
      AgentLink.attach(socket, {
        timeoutMs: this.options.readyTimeoutMs,
        ...(signal ? { signal } : {}),
      }),
    );
    this.links.set(handle.sandboxId, attaching);
    attaching.then(
      (link) => this.keepLink(handle.sandboxId, link),
      () => this.links.delete(handle.sandboxId),
    );
    return attaching;
  }

  async connect(handle: SandboxHandle, signal?: AbortSignal): Promise<AgentConnection> {
    const meta = await this.requireMeta(handle, this.dirOf(handle));
    if (meta.hibernated)
      throw new PolydevError("sandbox_not_running", `sandbox ${handle.sandboxId} is hibernated`);
    const kept = this.handedOver.take(handle.sandboxId);
    if (kept !== undefined) return kept;
    const link = await this.link(handle, signal);
    return link.connect(signal);
  }

  private async vmOf(meta: SandboxMeta, signal?: AbortSignal): Promise<RunningVm> {
    const known = this.vms.get(meta.sandboxId);
    if (known !== undefined) return known;
    const config = this.configOf(meta, false);
    if (!(await isQemuOf(meta.pid, config.runDir))) {
      throw new PolydevError("sandbox_not_running", `sandbox ${meta.sandboxId}'s VM is not running`);
    }
    const vm = await this.options.vmm.attach(config, meta.pid, signal);
    this.vms.set(meta.sandboxId, vm);
    return vm;
  }

  async hibernate(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    if (meta.hibernated) return;
    this.handedOver.drop(handle.sandboxId);
    const link = await this.link(handle, signal);
    const { cpuUsageNs } = parseStats(await link.request({ type: "stats" }));
    const vm = await this.vmOf(meta, signal);
    // The guest's writes reach the changes disk, and every byte we sent reaches the guest,
    // before its memory is saved; what connections send meanwhile waits for the resume.
    await link.quiesce();
    await vm.pause(signal);
    // Without x-ignore-shared where the RAM is a file: its forks can share the RAM (fork-ram.ts).
    const plain = meta.shape.sharedRam === true;
    await vm.save(join(dir, "hibernated.state"), signal, plain ? { ignoreShared: false } : {});
    const detached = link.detach();
    await vm.kill();
    await detached;
    await this.writeMeta(dir, {
      ...meta,
      pid: 0,
      hibernated: true,
      pausedCpuUsageNs: cpuUsageNs,
      ...(plain ? { hibernatedPlain: true as const } : {}),
    });
  }

  async resume(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    if (!meta.hibernated) return;
    const stateFile = join(dir, "hibernated.state");
    if (meta.network === "egress") {
      const procs = hostCgroupProcs(this.options.cgroupParent, meta.sandboxId);
      await ensureGuestNetwork(dir, { uid: meta.uid, gid: meta.uid }, procs, signal);
    }
    const kept = await this.links.get(handle.sandboxId)?.catch(() => undefined);
    const link = await this.startVm(meta, this.configOf(meta, true), stateFile, {
      signal,
      ...(kept?.alive ? { suspended: kept } : {}),
      state: hibernatedStateOptions(meta),
    });
    await link.request({ type: "clock", nowMs: Date.now() });
    const { pausedCpuUsageNs: _, hibernatedPlain: __, ...rest } = meta;
    const pid = this.vms.get(meta.sandboxId)?.pid ?? 0;
    await this.writeMeta(dir, { ...rest, pid, hibernated: false });
    await rm(stateFile, { force: true });
  }

  async destroy(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    const dir = this.dirOf(handle);
    this.handedOver.drop(handle.sandboxId);
    const existing = this.links.get(handle.sandboxId);
    this.links.delete(handle.sandboxId);
    existing?.then(
      (link) => link.close(),
      () => undefined,
    );
    const meta = await this.readMeta(dir);
    const known = this.vms.get(handle.sandboxId);
    this.vms.delete(handle.sandboxId);
    if (known !== undefined) await known.kill();
    else if (
      meta !== undefined &&
      meta.pid > 0 &&
      (await isQemuOf(meta.pid, this.configOf(meta, false).runDir))
    ) {
      const vm = await this.options.vmm
        .attach(this.configOf(meta, false), meta.pid, signal)
        .catch(() => undefined);
      if (vm) await vm.kill();
      else process.kill(meta.pid, "SIGKILL");
    }
    // After the VM (which holds its tap) and before its cgroup (which holds slirp4netns).
    await tearDownGuestNetwork(dir);
    await removeHostCgroup(this.options.cgroupParent, handle.sandboxId);
    // Retried: a create or fork still under way may be adding a file as the directory goes.
    await rm(this.runDir(handle.sandboxId), { recursive: true, force: true, maxRetries: 5 });
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
    await releaseCacheEntries(this.options.cacheDir, dir);
    this.console.forget(handle.sandboxId);
    await sweepLayers(this.options.rootDir);
  }

  /** See fork.ts: one pause and one save of the source, then N restores of it. */
  fork(handle: SandboxHandle, specs: SandboxSpec[], signal?: AbortSignal): Promise<SandboxHandle[]> {
    if (this.options.vmm.forks !== true) {
      return Promise.reject(
        new PolydevError("feature_unavailable", `the ${this.options.vmm.name} VMM cannot fork sandboxes`),
      );
    }
    return forkSandboxes(
      {
        name: this.name,
        rootDir: this.options.rootDir,
        readyTimeoutMs: this.options.readyTimeoutMs,
        dirOf: (source) => this.dirOf(source),
        sandboxDir: (id) => this.sandboxDir(id),
        runDir: (id) => this.runDir(id),
        requireMeta: (source, dir) => this.requireMeta(source, dir),
        writeMeta: (dir, meta) => this.writeMeta(dir, meta),
        vmOf: (meta, vmSignal) => this.vmOf(meta, vmSignal),
        pickUid: () => this.pickUid(),
        configOf: (meta, incoming) => this.configOf(meta, incoming),
        createCgroup: (meta, cpu) =>
          createHostCgroup(this.options.cgroupParent, meta.sandboxId, hostLimits(meta.shape, cpu)),
        startVm: (meta, config, stateFile, options) => this.startVm(meta, config, stateFile, options),
        vmm: this.options.vmm,
        templateUid: FIRST_VM_UID,
        forgetRam: (ramFile) => this.guestRam.forget(ramFile),
        holdCache: (meta) => this.holdCache(meta),
        destroy: (fork) => this.destroy(fork),
        restoreSlot: (slotSignal) => this.restoring.acquire(slotSignal),
        note: (dir, line) => this.note(dir, line),
        imageDisk: (image) => imageDiskPath(this.options.cacheDir, image.digest, image.layers),
      },
      handle,
      specs,
      signal,
    );
  }

  async list(): Promise<ObservedSandbox[]> {
    let ids: string[];
    try {
      ids = await readdir(join(this.options.rootDir, "sandboxes"));
    } catch {
      return [];
    }
    const observed: ObservedSandbox[] = [];
    for (const id of ids.filter((entry) => SANDBOX_ID.test(entry))) {
      const handle: SandboxHandle = { sandboxId: id, driver: this.name, data: {} };
      observed.push({ sandboxId: id, handle, alive: await this.isAlive(handle) });
    }
    return observed;
  }

  async isAlive(handle: SandboxHandle): Promise<boolean> {
    if (!SANDBOX_ID.test(handle.sandboxId)) return false;
    const meta = await this.readMeta(this.sandboxDir(handle.sandboxId));
    if (meta === undefined) return false;
    if (meta.hibernated) return existsSync(join(this.sandboxDir(handle.sandboxId), "hibernated.state"));
    return isQemuOf(meta.pid, this.configOf(meta, false).runDir);
  }

  async stats(handle: SandboxHandle, signal?: AbortSignal): Promise<SandboxStats> {
    const dir = this.dirOf(handle);
    const meta = await this.requireMeta(handle, dir);
    if (meta.hibernated) {
      return {
        cpuUsageNs: meta.pausedCpuUsageNs ?? 0,
        memoryBytes: 0,
        memoryLimitBytes: meta.memoryLimitBytes,
        pids: 0,
        diskBytes: 0,
      };
    }
    const link = await this.link(handle, signal);
    const guest = parseStats(await link.request({ type: "stats" }));
    return {
      cpuUsageNs: guest.cpuUsageNs,
      memoryBytes: Math.min(guest.memoryBytes, meta.memoryLimitBytes),
      memoryLimitBytes: meta.memoryLimitBytes,
      pids: guest.pids,
      diskBytes: guest.diskBytes,
    };
  }

  /** Host memory held by the sandbox's QEMU (for the bench's idle-memory figure). */
  async hostMemoryBytes(handle: SandboxHandle): Promise<number> {
    return hostCgroupMemory(this.options.cgroupParent, handle.sandboxId);
  }

  async logs(handle: SandboxHandle): Promise<string> {
    const dir = this.dirOf(handle);
    const parts = [
      await tail(join(dir, "driver.log"), MAX_LOG_BYTES / 2),
      await tail(join(this.runDir(handle.sandboxId), "qemu.log"), MAX_LOG_BYTES / 2),
      consoleSection(this.console.tail(handle.sandboxId)),
    ];
    return parts.filter((part) => part.length > 0).join("\n");
  }

  /** A line of the driver's own log for the sandbox (why a create failed), kept bounded. */
  private async note(dir: string, line: string): Promise<void> {
    if (!existsSync(dir)) return;
    const file = join(dir, "driver.log");
    const current = await tail(file, MAX_LOG_BYTES / 2);
    await writeFile(file, `${current}${new Date().toISOString()} ${line.slice(0, 8192)}\n`, {
      mode: 0o600,
    }).catch(() => appendFile(file, ""));
  }

  private async readMeta(dir: string): Promise<SandboxMeta | undefined> {
    try {
      return JSON.parse(await readFile(join(dir, "meta.json"), "utf8")) as SandboxMeta;
    } catch {
      return undefined;
    }
  }

  private async requireMeta(handle: SandboxHandle, dir: string): Promise<SandboxMeta> {
    const meta = await this.readMeta(dir);
    if (meta === undefined) throw new PolydevError("not_found", `sandbox ${handle.sandboxId} does not exist`);
    return meta;
  }

  private async writeMeta(dir: string, meta: SandboxMeta): Promise<void> {
    await writeFile(join(dir, "meta.json"), JSON.stringify(meta), { mode: 0o600 });
  }
}

/** The host cgroup of a sandbox's QEMU: its guest's RAM and QEMU's own needs. */
function hostLimits(shape: SnapshotShape, cpu: number) {
  return {
    memoryBytes: (shape.memoryMb + qemuOverheadMb(shape.accel)) * MiB,
    pidsMax: 64 + 8 * shape.vcpus,
    cpu,
  };
}

function imageUser(image: SandboxImage): { uid: number; gid: number; home: string } {
  const name = image.user ?? "root";
  const entry = imagePasswdEntry(name, image.layers);
  if (entry !== undefined) {
    return { uid: entry.uid, gid: entry.gid, home: entry.home.startsWith("/") ? entry.home : "/" };
  }
  if (/^[0-9]+$/.test(name)) return { uid: Number(name), gid: Number(name), home: "/" };
  if (name === "root") return { uid: 0, gid: 0, home: "/root" };
  throw new PolydevError("invalid_request", `the image has no user ${name} in its /etc/passwd`);
}
