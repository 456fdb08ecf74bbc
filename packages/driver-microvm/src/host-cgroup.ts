/**
 * The host cgroup of one VM's QEMU process: memory (guest RAM plus QEMU's own), pids (QEMU's
 * threads) and CPU time. v1 hierarchies or the v2 tree, written directly (no systemd here).
 * A guest cannot change it; it is the backstop behind the guest's own cgroup limits.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface HostLimits {
  memoryBytes: number;
  pidsMax: number;
  cpu: number;
}

const ROOT = "/sys/fs/cgroup";
const PERIOD_US = 100_000;
const isV2 = (): boolean => existsSync(join(ROOT, "cgroup.controllers"));

function dirs(parent: string, id: string): string[] {
  if (isV2()) return [join(ROOT, parent, id)];
  return ["memory", "pids", "cpu"].map((controller) => join(ROOT, controller, parent, id));
}

export async function createHostCgroup(parent: string, id: string, limits: HostLimits): Promise<void> {
  const quota = String(Math.max(1000, Math.round(limits.cpu * PERIOD_US)));
  if (isV2()) {
    const parentDir = join(ROOT, parent);
    await mkdir(parentDir, { recursive: true });
    await writeFile(join(parentDir, "cgroup.subtree_control"), "+memory +pids +cpu").catch(() => undefined);
    const dir = join(parentDir, id);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "memory.max"), String(limits.memoryBytes));
    await writeFile(join(dir, "pids.max"), String(limits.pidsMax));
    await writeFile(join(dir, "cpu.max"), `${quota} ${PERIOD_US}`).catch(() => undefined);
    return;
  }
  const [memory, pids, cpu] = dirs(parent, id);
  for (const dir of [memory, pids, cpu]) if (dir) await mkdir(dir, { recursive: true });
  if (memory) await writeFile(join(memory, "memory.limit_in_bytes"), String(limits.memoryBytes));
  if (pids) await writeFile(join(pids, "pids.max"), String(limits.pidsMax));
  if (cpu) {
    await writeFile(join(cpu, "cpu.cfs_period_us"), String(PERIOD_US)).catch(() => undefined);
    await writeFile(join(cpu, "cpu.cfs_quota_us"), quota).catch(() => undefined);
  }
}

/** The cgroup.procs files of the VM's host cgroup (what else joins it: its slirp4netns). */
export function hostCgroupProcs(parent: string, id: string): string[] {
  return dirs(parent, id).map((dir) => join(dir, "cgroup.procs"));
}

export async function joinHostCgroup(parent: string, id: string, pid: number): Promise<void> {
  for (const dir of dirs(parent, id)) await writeFile(join(dir, "cgroup.procs"), String(pid));
}

/** Host memory the VM's QEMU holds (its guest's RAM as far as touched, and QEMU's own). */
export async function hostCgroupMemory(parent: string, id: string): Promise<number> {
  const file = isV2()
    ? join(ROOT, parent, id, "memory.current")
    : join(ROOT, "memory", parent, id, "memory.usage_in_bytes");
  return Number((await readFile(file, "utf8").catch(() => "0")).trim()) || 0;
}

export async function removeHostCgroup(parent: string, id: string): Promise<void> {
  for (const dir of dirs(parent, id)) await rmdir(dir).catch(() => undefined);
}

/** Removes the parent (tests and benches that use a private one). */
export async function removeHostCgroupParent(parent: string): Promise<void> {
  const targets = isV2() ? [join(ROOT, parent)] : ["memory", "pids", "cpu"].map((c) => join(ROOT, c, parent));
  for (const dir of targets) await rmdir(dir).catch(() => undefined);
}
