/**
 * The boot snapshot (the way E2B starts sandboxes): the first create of an image on a host boots
 * a template VM, waits for its agent's hello (no sleeps), pauses it and saves it, memory and
 * devices, to the host cache. Every sandbox of that image and VM shape is then a restore of
 * this one file. The template never runs anything of a sandbox: it is only ever the image's
 * read-only root, the toolbox and an empty changes disk, with the agent waiting to be activated.
 */
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, rm, truncate, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ensureCacheEntry } from "./cache-entry.js";
import { GUEST_RAM_FD_PATH } from "./guest-ram.js";
import { hostCommand } from "./host-command.js";
import { AgentLink } from "./host-link.js";
import type { VmConfig, Vmm } from "./vmm.js";

export interface SnapshotShape {
  kernel: string;
  initrd: string;
  cmdline: string;
  rootDisk: string;
  toolboxDisk: string;
  /** An empty ext4 of the smallest changes size (the bench's raw restores use it). */
  emptyDisk: string;
  /**
   * The template's changes disk's size. The guest keeps the capacity it saw at boot across a
   * restore, so the template's disk is as large as any sandbox's may be; each sandbox's own
   * (smaller) qcow2 holds an ext4 of its size, and QEMU refuses any write past its end.
   */
  templateDiskBytes: number;
  memoryMb: number;
  vcpus: number;
  accel: string;
  /**
   * A virtio-net NIC (network "egress"): a device of the saved state, so egress sandboxes have
   * their own snapshot. Absent (not false) otherwise, so the shapes without one keep their keys.
   */
  nic?: true;
  /**
   * Guest RAM in a file beside the state (guest-ram.ts): restores map it copy-on-write instead
   * of each loading a copy. QEMU only.
   */
  sharedRam?: boolean;
}

export function snapshotKey(shape: SnapshotShape): string {
  return createHash("sha256").update(JSON.stringify(shape)).digest("hex").slice(0, 24);
}

/** The VM description shared by the template and every restore of it: only paths differ. */
export function vmConfig(
  shape: SnapshotShape,
  runDir: string,
  changesDisk: string,
  ids: { uid: number; gid: number },
): VmConfig {
  return {
    runDir,
    kernel: shape.kernel,
    initrd: shape.initrd,
    cmdline: shape.cmdline,
    memoryMb: shape.memoryMb,
    vcpus: shape.vcpus,
    disks: [
      { serial: "root", path: shape.rootDisk, format: "raw", readOnly: true },
      { serial: "toolbox", path: shape.toolboxDisk, format: "raw", readOnly: true },
      { serial: "changes", path: changesDisk, format: "qcow2", readOnly: false },
    ],
    agentSocket: join(runDir, "agent.sock"),
    stderrLog: join(runDir, "qemu.log"),
    uid: ids.uid,
    gid: ids.gid,
    // Every VM of the shape but the template: its RAM is the snapshot's, mapped privately.
    ...(shape.sharedRam ? { memoryFile: { path: GUEST_RAM_FD_PATH, share: false } } : {}),
    incoming: false,
    ...(shape.nic ? { network: {} } : {}),
  };
}

/** The guest RAM file of a boot snapshot (shapes with `sharedRam`), beside its state. */
export function snapshotRamFile(stateFile: string): string {
  return join(dirname(stateFile), "ram");
}

export interface EnsureSnapshotOptions {
  cacheDir: string;
  vmm: Vmm;
  shape: SnapshotShape;
  /** The template VM's unprivileged uid (and gid). */
  uid: number;
  bootTimeoutMs: number;
  signal?: AbortSignal | undefined;
}

/** Returns the saved state's path, booting and saving the template on first use. */
export async function ensureBootSnapshot(options: EnsureSnapshotOptions): Promise<string> {
  const { shape, vmm } = options;
  const entry = await ensureCacheEntry(
    options.cacheDir,
    `snapshot-${snapshotKey(shape)}`,
    async (partial) => {
      const runDir = join(partial, "run");
      await mkdir(runDir, { mode: 0o700 });
      await chown(runDir, options.uid, options.uid);
      await chmod(partial, 0o711);
      const changes = join(runDir, "changes.qcow2");
      await hostCommand(
        "qemu-img",
        ["create", "-q", "-f", "qcow2", changes, String(shape.templateDiskBytes)],
        {
          what: "qemu-img create",
        },
      );
      await chown(changes, options.uid, options.uid);
      const ram = join(partial, "ram");
      if (shape.sharedRam) {
        // The template writes its RAM through to the file; the save then leaves it out.
        await writeFile(ram, "", { mode: 0o600 });
        await truncate(ram, shape.memoryMb * 1024 * 1024);
        await chown(ram, options.uid, options.uid);
      }
      const config = {
        ...vmConfig(shape, runDir, changes, { uid: options.uid, gid: options.uid }),
        consoleLog: join(runDir, "console.log"),
        ...(shape.sharedRam ? { memoryFile: { path: ram, share: true } } : {}),
      };
      const vm = await vmm.start(config, options.signal);
      try {
        const link = await AgentLink.attach(config.agentSocket, {
          timeoutMs: options.bootTimeoutMs,
          ...(options.signal ? { signal: options.signal } : {}),
        }).catch(async (error: unknown) => {
          const { tail } = await import("./qemu-vmm.js");
          throw new Error(
            `the template VM's agent never said hello: ${String(error)}\n${await tail(config.consoleLog)}`,
          );
        });
        try {
          await vm.pause(options.signal);
          await vm.save(join(partial, "state"), options.signal);
        } finally {
          link.close();
        }
      } finally {
        await vm.kill();
      }
      await rm(runDir, { recursive: true, force: true });
      if (shape.sharedRam) {
        // Read only through the server's sealed copy from now on.
        await chown(ram, 0, 0);
        await chmod(ram, 0o400);
      }
    },
  );
  return join(entry, "state");
}
