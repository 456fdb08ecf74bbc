/**
 * The bench's baseline: QEMU started waiting for a state, the boot snapshot streamed in, `cont`,
 * and the first answer of the guest's agent (its hello after the link reset), with the same VM
 * shape, disks and flags as the driver's sandbox `lender` — and nothing of the driver's own
 * (no metadata, no activation). Ends the VM.
 */
import { chown, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { SnapshotShape } from "../boot-snapshot.js";
import { ensureBootSnapshot, snapshotRamFile, vmConfig } from "../boot-snapshot.js";
import { createChangesDisk } from "../disks.js";
import { GuestRam } from "../guest-ram.js";
import { AgentLink } from "../host-link.js";
import { FIRST_VM_UID } from "../microvm-driver.js";
import type { Vmm } from "../vmm.js";

export interface RawRestoreInput {
  rootDir: string;
  cacheDir: string;
  lenderId: string;
  vmm: Vmm;
  label: string;
}

/** Milliseconds from QEMU's spawn to the agent's first reply. */
export async function rawRestoreToFirstReply(input: RawRestoreInput): Promise<number> {
  const meta = JSON.parse(
    await readFile(join(input.rootDir, "sandboxes", input.lenderId, "meta.json"), "utf8"),
  ) as {
    shape: SnapshotShape;
  };
  const snapshot = await ensureBootSnapshot({
    cacheDir: input.cacheDir,
    vmm: input.vmm,
    shape: meta.shape,
    uid: FIRST_VM_UID,
    bootTimeoutMs: 180_000,
  });
  // Traversable by the VM's uid, like the driver's own directories.
  await mkdir(join(input.rootDir, "raw"), { recursive: true, mode: 0o711 });
  const runDir = join(input.rootDir, "raw", input.label);
  await mkdir(runDir, { mode: 0o700 });
  const uid = FIRST_VM_UID + 1;
  await chown(runDir, uid, uid);
  const changes = join(runDir, "changes.qcow2");
  await createChangesDisk(meta.shape.emptyDisk, changes);
  await chown(changes, uid, uid);
  const base = { ...vmConfig(meta.shape, runDir, changes, { uid, gid: uid }), incoming: true };
  // Over the same sealed RAM as the driver's restores (made before the clock starts).
  const guestRam = new GuestRam(input.cacheDir);
  const config =
    base.memoryFile === undefined
      ? base
      : {
          ...base,
          memoryFile: { ...base.memoryFile, fd: await guestRam.descriptor(snapshotRamFile(snapshot)) },
        };
  const start = process.hrtime.bigint();
  const vm = await input.vmm.start(config);
  try {
    const linking = AgentLink.attach(config.agentSocket, { timeoutMs: 60_000 });
    linking.catch(() => undefined);
    await vm.restore(snapshot);
    const link = await linking;
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    link.close();
    return ms;
  } finally {
    guestRam.close();
    await vm.kill();
    await rm(runDir, { recursive: true, force: true });
  }
}
