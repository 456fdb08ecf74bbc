/**
 * Per-sandbox cgroups, v1 (one directory per controller) or v2 (one unified directory). All
 * limits are files; nothing here needs systemd.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { SandboxLimits } from "@polydev/core";

const ROOT = "/sys/fs/cgroup";
const V1_CONTROLLERS = ["memory", "pids", "cpu", "cpuacct", "freezer"] as const;
const CPU_PERIOD_US = 100_000;
const MiB = 1024 * 1024;

export interface CgroupUsage {
  cpuUsageNs: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  pids: number;
}

async function readNumber(file: string): Promise<number> {
  const text = (await readFile(file, "utf8").catch(() => "0")).trim();
  return text === "max" ? Number.POSITIVE_INFINITY : Number(text);
}

async function readPids(file: string): Promise<number[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map(Number);
}

export interface Cgroups {
  readonly version: 1 | 2;
  /** The `cgroup.procs` files a process writes itself into to join the sandbox. */
  procsFiles(id: string): string[];
  create(id: string, limits: SandboxLimits): Promise<void>;
  /** Kills every process in the sandbox's cgroups and removes them. Idempotent. */
  destroy(id: string): Promise<void>;
  freeze(id: string): Promise<void>;
  thaw(id: string): Promise<void>;
  usage(id: string): Promise<CgroupUsage>;
  list(): Promise<string[]>;
  pids(id: string): Promise<number[]>;
}

export function detectCgroups(group = "polydev"): Cgroups {
  return existsSync(join(ROOT, "cgroup.controllers"))
    ? new CgroupsV2(join(ROOT, group))
    : new CgroupsV1(group);
}

class CgroupsV1 implements Cgroups {
  readonly version = 1;
  constructor(private readonly group: string) {}

  private dir(controller: string, id: string): string {
    return join(ROOT, controller, this.group, id);
  }

  procsFiles(id: string): string[] {
    return V1_CONTROLLERS.map((c) => join(this.dir(c, id), "cgroup.procs"));
  }

  async create(id: string, limits: SandboxLimits): Promise<void> {
    for (const controller of V1_CONTROLLERS) await mkdir(this.dir(controller, id), { recursive: true });
    const memory = String(limits.memoryMb * MiB);
    await writeFile(join(this.dir("memory", id), "memory.limit_in_bytes"), memory);
    // With swap accounting on, swap counts against the same limit (no escape to swap).
    await writeFile(join(this.dir("memory", id), "memory.memsw.limit_in_bytes"), memory).catch(
      () => undefined,
    );
    await writeFile(join(this.dir("pids", id), "pids.max"), String(limits.pidsMax));
    await writeFile(join(this.dir("cpu", id), "cpu.cfs_period_us"), String(CPU_PERIOD_US));
    await writeFile(
      join(this.dir("cpu", id), "cpu.cfs_quota_us"),
      String(Math.round(limits.cpu * CPU_PERIOD_US)),
    );
  }

  async pids(id: string): Promise<number[]> {
    return readPids(join(this.dir("freezer", id), "cgroup.procs"));
  }

  async destroy(id: string): Promise<void> {
    // Freeze first so nothing forks between reading the list and the kill, then thaw so the
    // kills are delivered.
    const freezer = this.dir("freezer", id);
    for (let attempt = 0; attempt < 50 && existsSync(freezer); attempt++) {
      const pids = await this.pids(id);
      if (pids.length === 0) break;
      await writeFile(join(freezer, "freezer.state"), "FROZEN").catch(() => undefined);
      for (const pid of pids) killQuietly(pid);
      await writeFile(join(freezer, "freezer.state"), "THAWED").catch(() => undefined);
      await sleep(attempt < 5 ? 2 : 20);
    }
    for (const controller of V1_CONTROLLERS) await removeDir(this.dir(controller, id));
  }

  async freeze(id: string): Promise<void> {
    await writeFile(join(this.dir("freezer", id), "freezer.state"), "FROZEN");
  }

  async thaw(id: string): Promise<void> {
    await writeFile(join(this.dir("freezer", id), "freezer.state"), "THAWED");
  }

  async usage(id: string): Promise<CgroupUsage> {
    return {
      cpuUsageNs: await readNumber(join(this.dir("cpuacct", id), "cpuacct.usage")),
      memoryBytes: await readNumber(join(this.dir("memory", id), "memory.usage_in_bytes")),
      memoryLimitBytes: await readNumber(join(this.dir("memory", id), "memory.limit_in_bytes")),
      pids: await readNumber(join(this.dir("pids", id), "pids.current")),
    };
  }

  async list(): Promise<string[]> {
    const ids = new Set<string>();
    for (const controller of V1_CONTROLLERS) {
      for (const entry of await readdir(join(ROOT, controller, this.group), { withFileTypes: true }).catch(
        () => [],
      )) {
        if (entry.isDirectory()) ids.add(entry.name);
      }
    }
    return [...ids];
  }
}

class CgroupsV2 implements Cgroups {
  readonly version = 2;
  private prepared = false;
  constructor(private readonly base: string) {}

  procsFiles(id: string): string[] {
    return [join(this.base, id, "cgroup.procs")];
  }

  private async prepare(): Promise<void> {
    if (this.prepared) return;
    await mkdir(this.base, { recursive: true });
    // Controllers must be enabled on every level above the sandbox's cgroup.
    await writeFile(join(ROOT, "cgroup.subtree_control"), "+memory +pids +cpu").catch(() => undefined);
    await writeFile(join(this.base, "cgroup.subtree_control"), "+memory +pids +cpu");
    this.prepared = true;
  }

  async create(id: string, limits: SandboxLimits): Promise<void> {
    await this.prepare();
    const dir = join(this.base, id);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "memory.max"), String(limits.memoryMb * MiB));
    await writeFile(join(dir, "memory.swap.max"), "0").catch(() => undefined);
    await writeFile(join(dir, "pids.max"), String(limits.pidsMax));
    await writeFile(join(dir, "cpu.max"), `${Math.round(limits.cpu * CPU_PERIOD_US)} ${CPU_PERIOD_US}`);
  }

  async pids(id: string): Promise<number[]> {
    return readPids(join(this.base, id, "cgroup.procs"));
  }

  async destroy(id: string): Promise<void> {
    const dir = join(this.base, id);
    if (!existsSync(dir)) return;
    await writeFile(join(dir, "cgroup.kill"), "1").catch(async () => {
      for (const pid of await this.pids(id)) killQuietly(pid);
    });
    for (let attempt = 0; attempt < 50 && (await this.pids(id)).length > 0; attempt++)
      await sleep(attempt < 5 ? 2 : 20);
    await removeDir(dir);
  }

  async freeze(id: string): Promise<void> {
    await writeFile(join(this.base, id, "cgroup.freeze"), "1");
  }

  async thaw(id: string): Promise<void> {
    await writeFile(join(this.base, id, "cgroup.freeze"), "0");
  }

  async usage(id: string): Promise<CgroupUsage> {
    const dir = join(this.base, id);
    const cpuStat = await readFile(join(dir, "cpu.stat"), "utf8").catch(() => "");
    const usageUsec = Number(/usage_usec (\d+)/.exec(cpuStat)?.[1] ?? 0);
    return {
      cpuUsageNs: usageUsec * 1000,
      memoryBytes: await readNumber(join(dir, "memory.current")),
      memoryLimitBytes: await readNumber(join(dir, "memory.max")),
      pids: await readNumber(join(dir, "pids.current")),
    };
  }

  async list(): Promise<string[]> {
    const entries = await readdir(this.base, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** rmdir on a cgroup fails while the kernel is still tearing down its last process. */
async function removeDir(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY") throw error;
      await sleep(attempt < 5 ? 2 : 20);
    }
  }
}
