/**
 * Copy-on-write RAM for forks (issue 10: "fork restores one snapshot N times with copy-on-write
 * disks and memory"). The source's saved state carries its RAM in the stream, so each fork
 * loading it would get a private copy of all of it. Instead the state is moved once into the
 * form of a boot snapshot (boot-snapshot.ts, guest-ram.ts): a QEMU that never runs the guest
 * loads it onto a RAM file it maps shared, and saves again with x-ignore-shared, which leaves
 * the RAM in the file and only the devices in the new state. Every fork then maps that file's
 * sealed copy privately: the pages no fork writes stay one copy for all of them.
 *
 * The source's save is made without x-ignore-shared for this (its RAM is not shared, so the
 * stream has it either way; only the format differs): QEMU refuses pages for a block it ignores,
 * and the loading QEMU's block is shared. Hibernate saves the same way (hibernatedPlain), so a
 * hibernated source's forks share its RAM too; a state hibernated before that is restored by
 * each fork as it is.
 */
import { randomBytes } from "node:crypto";
import { chmod, chown, mkdir, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { SnapshotShape } from "./boot-snapshot.js";
import { vmConfig } from "./boot-snapshot.js";
import { createTop } from "./fork-layers.js";
import type { StateOptions, Vmm } from "./vmm.js";

/** How a sandbox's hibernated state was saved (SandboxMeta.hibernatedPlain), to load it alike. */
export function hibernatedStateOptions(meta: { hibernatedPlain?: true }): StateOptions {
  return meta.hibernatedPlain === true ? { ignoreShared: false } : {};
}

export interface ForkRam {
  /** The devices-only state every fork restores. */
  stateFile: string;
  /** The RAM file (root's, read-only) whose sealed copy every fork maps. */
  ramFile: string;
  /** Removes both (the forks' QEMUs hold the sealed copy, not the file). */
  remove(): Promise<void>;
}

export interface ForkRamInput {
  vmm: Vmm;
  shape: SnapshotShape;
  /** A root-owned directory of the source's: the files live here until `remove`. */
  dir: string;
  /** The unprivileged uid (and gid) the loading QEMU runs as. */
  uid: number;
  /** The source's state, saved with `ignoreShared: false`. */
  savedState: string;
  /** The frozen layer the forks' tops are over, and their disks' size. */
  layer: string;
  sizeBytes: number;
  signal?: AbortSignal | undefined;
}

export async function moveRamToFile(input: ForkRamInput): Promise<ForkRam> {
  const { shape, uid } = input;
  const work = join(input.dir, `fork-ram-${randomBytes(6).toString("hex")}`);
  const remove = (): Promise<void> => rm(work, { recursive: true, force: true });
  try {
    await mkdir(work, { mode: 0o711 });
    const runDir = join(work, "run");
    await mkdir(runDir, { mode: 0o700 });
    await chown(runDir, uid, uid);
    // QEMU opens its disks at start even though this guest never runs: a top of its own.
    const top = join(runDir, "changes.qcow2");
    await createTop(input.layer, top, input.sizeBytes);
    await chown(top, uid, uid);
    const ramFile = join(work, "ram");
    await writeFile(ramFile, "", { mode: 0o600 });
    await truncate(ramFile, shape.memoryMb * 1024 * 1024);
    await chown(ramFile, uid, uid);
    const config = {
      ...vmConfig(shape, runDir, top, { uid, gid: uid }),
      memoryFile: { path: ramFile, share: true },
      incoming: true,
    };
    const stateFile = join(work, "state");
    const vm = await input.vmm.start(config, input.signal);
    try {
      await vm.restore(input.savedState, input.signal, { ignoreShared: false, run: false });
      await vm.save(stateFile, input.signal, { ignoreShared: true });
    } finally {
      await vm.kill();
    }
    await rm(runDir, { recursive: true, force: true });
    // Read only through the server's sealed copy from now on, as a boot snapshot's RAM.
    await chown(ramFile, 0, 0);
    await chmod(ramFile, 0o400);
    return { stateFile, ramFile, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}
