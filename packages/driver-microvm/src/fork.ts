/**
 * Fork (SandboxDriver.fork) for the microvm driver: one source, N new sandboxes restored from
 * one saved state of it, each over its own copy-on-write disk.
 *
 * A running source is paused, its changes disk frozen at that instant (a new top for the
 * source over its old one, fork-layers.ts), its state saved (memory and devices, once), and it
 * runs again: it is paused for one save, whatever N. A hibernated source's saved state is
 * already there; only its disk is frozen. Each fork then is a QEMU of its own uid restoring
 * that state over its own top on the frozen layer, reached over its own agent link (the
 * restore's link reset drops the source host's connections), and becomes itself: its own id,
 * its spec's environment, the host's clock and its own random seed (the `fork` request). It
 * keeps its source's user and limits, as a fork does on every driver.
 *
 * All or none: any failure destroys every fork made so far and leaves the source as it was
 * (running, or hibernated) with at most one more, harmless, layer in its chain.
 */
import { randomBytes } from "node:crypto";
import { chmod, chown, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { SandboxHandle, SandboxImage, SandboxSpec } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { createTop, freezeLayer, holdLayers, layerPath, newLayerName, sweepLayers } from "./fork-layers.js";
import type { ForkRam } from "./fork-ram.js";
import { hibernatedStateOptions, moveRamToFile } from "./fork-ram.js";
import type { AgentLink } from "./host-link.js";
import type { SandboxMeta, StartOptions } from "./microvm-driver.js";
import { qcow2VirtualSize } from "./qcow2-header.js";
import type { RunningVm, StateOptions, VmConfig, Vmm } from "./vmm.js";

/** What fork needs of the driver (its private parts, handed over by MicrovmDriver.fork). */
export interface ForkHost {
  readonly name: string;
  readonly rootDir: string;
  readonly readyTimeoutMs: number;
  dirOf(handle: SandboxHandle): string;
  sandboxDir(sandboxId: string): string;
  runDir(sandboxId: string): string;
  requireMeta(handle: SandboxHandle, dir: string): Promise<SandboxMeta>;
  writeMeta(dir: string, meta: SandboxMeta): Promise<void>;
  vmOf(meta: SandboxMeta, signal?: AbortSignal): Promise<RunningVm>;
  pickUid(): Promise<number>;
  configOf(meta: SandboxMeta, incoming: boolean): VmConfig;
  createCgroup(meta: SandboxMeta, cpu: number): Promise<void>;
  startVm(meta: SandboxMeta, config: VmConfig, stateFile: string, options?: StartOptions): Promise<AgentLink>;
  readonly vmm: Vmm;
  /** The uid of VMs that never run a sandbox's code (the boot snapshot's template). */
  readonly templateUid: number;
  /** Lets go of the sealed copy of a fork's RAM file, once every fork's QEMU has started. */
  forgetRam(ramFile: string): void;
  /** Marks the host cache entries a sandbox needs as held by it (cache-pruning.ts). */
  holdCache(meta: SandboxMeta): Promise<void>;
  destroy(handle: SandboxHandle): Promise<void>;
  /** A turn to restore (restore-slots.ts); resolves with its release. */
  restoreSlot(signal?: AbortSignal): Promise<() => void>;
  note(dir: string, line: string): Promise<void>;
  /** The read-only root disk of an image (disks.ts), to tell whether a spec's image is the source's. */
  imageDisk(image: SandboxImage): string;
}

const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export async function forkSandboxes(
  host: ForkHost,
  handle: SandboxHandle,
  specs: SandboxSpec[],
  signal?: AbortSignal,
): Promise<SandboxHandle[]> {
  const sourceDir = host.dirOf(handle);
  const source = await host.requireMeta(handle, sourceDir);
  checkSpecs(specs);
  // Its NIC is part of the saved state, and each fork would need its own namespace and router.
  if (source.network === "egress" || source.shape.nic === true) {
    throw new PolydevError(
      "feature_unavailable",
      "the microvm driver cannot fork a sandbox with network egress yet; fork one with network none",
    );
  }
  for (const spec of specs) {
    if (spec.image !== undefined && host.imageDisk(spec.image) !== source.shape.rootDisk) {
      throw new PolydevError(
        "invalid_request",
        `fork ${spec.id} must have the image of the sandbox it forks`,
      );
    }
  }
  const made: SandboxHandle[] = [];
  const saved = join(sourceDir, `fork-${randomBytes(8).toString("hex")}.state`);
  // Its forks share one copy of its RAM (fork-ram.ts): a shared-RAM shape whose state is saved
  // (or was hibernated) without x-ignore-shared.
  const shareRam = source.shape.sharedRam === true && (!source.hibernated || source.hibernatedPlain === true);
  let ram: ForkRam | undefined;
  try {
    // Every fork's directory is claimed first: a taken id refuses the fork before the pause.
    for (const spec of specs) made.push(await claim(host, spec.id));
    const { layers, sizeBytes, stateFile } = source.hibernated
      ? { ...(await freezeDisk(host, source)), stateFile: join(sourceDir, "hibernated.state") }
      : {
          ...(await freezeRunning(host, source, saved, shareRam ? { ignoreShared: false } : {}, signal)),
          stateFile: saved,
        };
    if (shareRam) {
      ram = await moveRamToFile({
        vmm: host.vmm,
        shape: source.shape,
        dir: sourceDir,
        uid: host.templateUid,
        savedState: stateFile,
        layer: layerPath(host.rootDir, frozenLayer(layers)),
        sizeBytes,
        signal,
      });
      await rm(saved, { force: true });
    }
    const restoring = ram
      ? { layers, sizeBytes, stateFile: ram.stateFile, ramFile: ram.ramFile, state: {} }
      : { layers, sizeBytes, stateFile, state: source.hibernated ? hibernatedStateOptions(source) : {} };
    // Every start settles before anything is cleaned up: a fork still on its way to spawning its
    // QEMU must not have the RAM's descriptor closed under it.
    const started = await Promise.allSettled(
      specs.map((spec) => startFork(host, source, spec, restoring, signal)),
    );
    const failed = started.find((result) => result.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    return made;
  } catch (error) {
    await host.note(sourceDir, `fork failed: ${error instanceof Error ? error.message : String(error)}`);
    for (const fork of made) await host.destroy(fork).catch(() => undefined);
    await sweepLayers(host.rootDir).catch(() => undefined);
    throw error;
  } finally {
    if (ram !== undefined) {
      host.forgetRam(ram.ramFile);
      await ram.remove();
    }
    await rm(saved, { force: true });
  }
}

function frozenLayer(layers: readonly string[]): string {
  const below = layers.at(-1);
  if (below === undefined) throw new PolydevError("internal", "a fork without a frozen layer");
  return below;
}

function checkSpecs(specs: SandboxSpec[]): void {
  if (specs.length === 0) throw new PolydevError("invalid_request", "a fork needs at least one spec");
  for (const spec of specs) {
    if (!SANDBOX_ID.test(spec.id)) {
      throw new PolydevError("invalid_request", "sandbox ids are letters, digits, '.', '_' and '-'");
    }
    if (spec.network !== "none") {
      throw new PolydevError("feature_unavailable", `the microvm driver offers network "none" only so far`);
    }
  }
  if (new Set(specs.map((spec) => spec.id)).size !== specs.length) {
    throw new PolydevError("invalid_request", "each fork needs its own id");
  }
}

async function claim(host: ForkHost, sandboxId: string): Promise<SandboxHandle> {
  try {
    await mkdir(host.sandboxDir(sandboxId), { mode: 0o711 });
  } catch (error) {
    throw new PolydevError("conflict", `sandbox ${sandboxId} already exists`, { cause: error });
  }
  return { sandboxId, driver: host.name, data: {} };
}

interface Frozen {
  /** The source's layers after the freeze: what every fork's top is over. */
  layers: string[];
  sizeBytes: number;
}

/**
 * The source's top becomes a layer and the source gets a new top over it. `attach` puts the new
 * top under a running QEMU; it is not called for a hibernated source (its QEMU starts on the
 * new top from the metadata).
 */
async function freezeDisk(
  host: ForkHost,
  source: SandboxMeta,
  attach?: (top: string) => Promise<void>,
): Promise<Frozen> {
  const runDir = host.runDir(source.sandboxId);
  const oldTop = join(runDir, source.top ?? "changes.qcow2");
  const sizeBytes = await qcow2VirtualSize(oldTop);
  const name = await newLayerName(host.rootDir);
  const topName = `changes-${randomBytes(6).toString("hex")}.qcow2`;
  const newTop = join(runDir, topName);
  await createTop(layerPath(host.rootDir, name), newTop, sizeBytes);
  await chown(newTop, source.uid, source.uid);
  await chmod(newTop, 0o600);
  try {
    await attach?.(newTop);
  } catch (error) {
    await rm(newTop, { force: true });
    throw error;
  }
  // From here the source writes only its new top: the old one is the frozen layer. The layer's
  // name is linked in only now: a QEMU never follows a header to a layer that is not there yet
  // (blockdev-snapshot attaches the node it has open, not the header's path).
  const layers = [...(source.layers ?? []), name];
  await freezeLayer(host.rootDir, oldTop, name);
  await holdLayers(host.sandboxDir(source.sandboxId), host.rootDir, layers);
  await host.writeMeta(host.sandboxDir(source.sandboxId), { ...source, top: topName, layers });
  return { layers, sizeBytes };
}

/** Paused for the disk freeze and one save of its state, then running again whatever happened. */
async function freezeRunning(
  host: ForkHost,
  source: SandboxMeta,
  stateFile: string,
  state: StateOptions,
  signal?: AbortSignal,
): Promise<Frozen> {
  const vm = await host.vmOf(source, signal);
  if (vm.addOverlay === undefined || vm.resume === undefined) {
    throw new PolydevError("feature_unavailable", "this VMM cannot fork a running sandbox");
  }
  const { addOverlay, resume } = { addOverlay: vm.addOverlay.bind(vm), resume: vm.resume.bind(vm) };
  await vm.pause(signal);
  try {
    // The disk first: a completed save lets go of the disks until `cont`.
    const frozen = await freezeDisk(host, source, (top) => addOverlay("changes", top, signal));
    await vm.save(stateFile, signal, state);
    return frozen;
  } finally {
    await resume(signal);
  }
}

async function startFork(
  host: ForkHost,
  source: SandboxMeta,
  spec: SandboxSpec,
  frozen: Frozen & { stateFile: string; ramFile?: string | undefined; state: StateOptions },
  signal?: AbortSignal,
): Promise<void> {
  const dir = host.sandboxDir(spec.id);
  const meta: SandboxMeta = {
    sandboxId: spec.id,
    uid: await host.pickUid(),
    pid: 0,
    memoryLimitBytes: source.memoryLimitBytes,
    shape: source.shape,
    hibernated: false,
    top: "changes.qcow2",
    layers: frozen.layers,
  };
  await host.writeMeta(dir, meta);
  await holdLayers(dir, host.rootDir, frozen.layers);
  const config = host.configOf(meta, true);
  await mkdir(config.runDir, { mode: 0o700 });
  await chown(config.runDir, meta.uid, meta.uid);
  const top = join(config.runDir, "changes.qcow2");
  await createTop(layerPath(host.rootDir, frozenLayer(frozen.layers)), top, frozen.sizeBytes);
  await chown(top, meta.uid, meta.uid);
  await chmod(top, 0o600);
  await host.holdCache(meta);
  await host.createCgroup(meta, spec.limits.cpu);
  const release = await host.restoreSlot(signal);
  try {
    const link = await host.startVm(meta, config, frozen.stateFile, {
      signal,
      ramFile: frozen.ramFile,
      state: frozen.state,
    });
    await link.request(
      {
        type: "fork",
        env: { PATH, ...spec.image?.env, ...spec.env },
        nowMs: Date.now(),
        seed: randomBytes(64).toString("hex"),
      },
      host.readyTimeoutMs,
    );
  } finally {
    release();
  }
}
