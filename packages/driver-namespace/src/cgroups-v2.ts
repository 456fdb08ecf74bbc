import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { SandboxLimits } from "@polydev/core";
import {
  CPU_PERIOD_US,
  killQuietly,
  MiB,
  readKeyed,
  readNumber,
  readPids,
  removeCgroupDir,
  until,
} from "./cgroup-files.js";
import type { Cgroups, CgroupUsage } from "./cgroups.js";

const CONTROLLERS = ["memory", "pids", "cpu"] as const;

/** One directory per sandbox under `/sys/fs/cgroup/<group>/`. */
export class CgroupsV2 implements Cgroups {
  readonly version = 2;
  private prepared: Promise<void> | undefined;

  constructor(private readonly base: string) {}

  private dir(id: string): string {
    return join(this.base, id);
  }

  paths(id: string): string[] {
    return [this.dir(id)];
  }

  procsFiles(id: string): string[] {
    return [join(this.dir(id), "cgroup.procs")];
  }

  missing(): string[] {
    const available = readFileSync(join(dirname(this.base), "cgroup.controllers"), "utf8").split(/\s+/);
    return CONTROLLERS.filter((controller) => !available.includes(controller)).map(
      (controller) => `the cgroup v2 "${controller}" controller (enable it in ${dirname(this.base)})`,
    );
  }

  exists(id: string): boolean {
    return existsSync(this.dir(id));
  }

  /** Controllers must be enabled in every ancestor's subtree_control; once per driver. */
  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      await mkdir(this.base, { recursive: true });
      const enable = CONTROLLERS.map((controller) => `+${controller}`).join(" ");
      await writeFile(join(dirname(this.base), "cgroup.subtree_control"), enable).catch(() => undefined);
      await writeFile(join(this.base, "cgroup.subtree_control"), enable);
    })();
    return this.prepared;
  }

  /** Synchronous on purpose: see CgroupsV1.create. */
  async create(id: string, limits: SandboxLimits): Promise<void> {
    await this.prepare();
    const dir = this.dir(id);
    mkdirSync(dir);
    writeFileSync(join(dir, "memory.max"), String(limits.memoryMb * MiB));
    try {
      writeFileSync(join(dir, "memory.swap.max"), "0");
    } catch {
      // no swap accounting on this host
    }
    writeFileSync(join(dir, "pids.max"), String(limits.pidsMax));
    writeFileSync(
      join(dir, "cpu.max"),
      `${Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US))} ${CPU_PERIOD_US}`,
    );
  }

  isFrozen(id: string): boolean {
    try {
      return readFileSync(join(this.dir(id), "cgroup.freeze"), "utf8").trim() === "1";
    } catch {
      return false;
    }
  }

  async freeze(id: string): Promise<void> {
    await writeFile(join(this.dir(id), "cgroup.freeze"), "1");
    await until(
      `sandbox ${id} to freeze`,
      async () => (await readKeyed(join(this.dir(id), "cgroup.events"))).get("frozen") === 1,
    );
  }

  async thaw(id: string): Promise<void> {
    await writeFile(join(this.dir(id), "cgroup.freeze"), "0");
  }

  async destroy(id: string): Promise<void> {
    const dir = this.dir(id);
    if (!existsSync(dir)) return;
    const procs = join(dir, "cgroup.procs");
    await writeFile(join(dir, "cgroup.kill"), "1").catch(() => undefined);
    // Before 5.14 there is no cgroup.kill; killing what is listed until nothing is left works too.
    await until(`sandbox ${id}'s processes to exit`, async () => {
      const pids = await readPids(procs);
      for (const pid of pids) killQuietly(pid);
      return pids.length === 0;
    });
    await removeCgroupDir(dir);
  }

  members(id: string): Promise<number[]> {
    return readPids(join(this.dir(id), "cgroup.procs"));
  }

  async usage(id: string): Promise<CgroupUsage> {
    const dir = this.dir(id);
    const [cpuStat, memoryBytes, memoryLimitBytes, pids] = await Promise.all([
      readKeyed(join(dir, "cpu.stat")),
      readNumber(join(dir, "memory.current")),
      readNumber(join(dir, "memory.max")),
      readNumber(join(dir, "pids.current")),
    ]);
    return { cpuUsageNs: (cpuStat.get("usage_usec") ?? 0) * 1000, memoryBytes, memoryLimitBytes, pids };
  }

  async oomKills(id: string): Promise<number> {
    return (await readKeyed(join(this.dir(id), "memory.events"))).get("oom_kill") ?? 0;
  }
}
