/**
 * Per-sandbox cgroups, v1 (one directory per controller) or v2 (one unified directory). All
 * limits are plain files; nothing here needs systemd.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { SandboxLimits } from "@polydev/core";
import { CgroupsV1 } from "./cgroups-v1.js";
import { CgroupsV2 } from "./cgroups-v2.js";

export const CGROUP_ROOT = "/sys/fs/cgroup";

export interface CgroupUsage {
  cpuUsageNs: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  pids: number;
}

export interface Cgroups {
  readonly version: 1 | 2;
  /** The sandbox's cgroup directories. */
  paths(id: string): string[];
  /** The `cgroup.procs` files a process writes itself into to join the sandbox. */
  procsFiles(id: string): string[];
  /** Names what is missing for this driver to work (empty when all is well). */
  missing(): string[];
  create(id: string, limits: SandboxLimits): Promise<void>;
  /** Kills every process in the sandbox's cgroups and removes them. Idempotent. */
  destroy(id: string): Promise<void>;
  /** Resolves once every process of the sandbox is frozen. */
  freeze(id: string): Promise<void>;
  thaw(id: string): Promise<void>;
  /** Whether the sandbox is frozen (or being frozen): its processes cannot answer now. */
  isFrozen(id: string): boolean;
  usage(id: string): Promise<CgroupUsage>;
  /** Pids of the sandbox's processes (every process joins all of its cgroups). */
  members(id: string): Promise<number[]>;
  /** How many processes the kernel killed for exceeding the memory limit. */
  oomKills(id: string): Promise<number>;
  exists(id: string): boolean;
}

export function detectCgroups(group = "polydev"): Cgroups {
  return existsSync(join(CGROUP_ROOT, "cgroup.controllers"))
    ? new CgroupsV2(join(CGROUP_ROOT, group))
    : new CgroupsV1(CGROUP_ROOT, group);
}
