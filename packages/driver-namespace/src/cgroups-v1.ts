import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
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

/** cpuacct is its own hierarchy on some hosts and shares cpu's on others; both work. */
const CONTROLLERS = ["memory", "pids", "cpu", "cpuacct", "freezer"] as const;
type Controller = (typeof CONTROLLERS)[number];

/** One directory per controller: `/sys/fs/cgroup/<controller>/<group>/<id>`. */
export class CgroupsV1 implements Cgroups {
  readonly version = 1;

  constructor(
    private readonly root: string,
    private readonly group: string,
  ) {}

  private dir(controller: Controller, id: string): string {
    return join(this.root, controller, this.group, id);
  }

  paths(id: string): string[] {
    return [...new Set(CONTROLLERS.map((controller) => this.dir(controller, id)))];
  }

  procsFiles(id: string): string[] {
    return this.paths(id).map((dir) => join(dir, "cgroup.procs"));
  }

  missing(): string[] {
    return CONTROLLERS.filter((controller) => !existsSync(join(this.root, controller, "cgroup.procs"))).map(
      (controller) => `the cgroup v1 "${controller}" controller (mount it at ${join(this.root, controller)})`,
    );
  }

  exists(id: string): boolean {
    return existsSync(this.dir("freezer", id));
  }

  /**
   * Synchronous on purpose (as the other create-path file work in this driver): a dozen tiny
   * cgroupfs operations take ~0.2 ms as plain syscalls, while each round trip through the
   * libuv thread pool costs more than that on a busy host.
   */
  async create(id: string, limits: SandboxLimits): Promise<void> {
    for (const dir of this.paths(id)) mkdirSync(dir, { recursive: true });
    const memory = String(limits.memoryMb * MiB);
    writeFileSync(join(this.dir("memory", id), "memory.limit_in_bytes"), memory);
    try {
      // With swap accounting on, swap counts against the same limit: no escape into swap.
      writeFileSync(join(this.dir("memory", id), "memory.memsw.limit_in_bytes"), memory);
    } catch {
      // no swap accounting on this host
    }
    writeFileSync(join(this.dir("pids", id), "pids.max"), String(limits.pidsMax));
    writeFileSync(join(this.dir("cpu", id), "cpu.cfs_period_us"), String(CPU_PERIOD_US));
    writeFileSync(
      join(this.dir("cpu", id), "cpu.cfs_quota_us"),
      String(Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US))),
    );
  }

  private async freezerState(id: string): Promise<string> {
    return (await readFile(join(this.dir("freezer", id), "freezer.state"), "utf8")).trim();
  }

  isFrozen(id: string): boolean {
    try {
      return readFileSync(join(this.dir("freezer", id), "freezer.state"), "utf8").trim() !== "THAWED";
    } catch {
      return false;
    }
  }

  async freeze(id: string): Promise<void> {
    await writeFile(join(this.dir("freezer", id), "freezer.state"), "FROZEN");
    await until(`sandbox ${id} to freeze`, async () => (await this.freezerState(id)) === "FROZEN");
  }

  async thaw(id: string): Promise<void> {
    await writeFile(join(this.dir("freezer", id), "freezer.state"), "THAWED");
  }

  async destroy(id: string): Promise<void> {
    const freezer = this.dir("freezer", id);
    const procs = join(freezer, "cgroup.procs");
    if (existsSync(freezer)) {
      // v1 has no cgroup.kill. Frozen tasks cannot fork, so the list read while frozen is
      // complete; the kills land when the cgroup thaws. A process that joins meanwhile (an exec
      // racing the destroy) is caught by the next round.
      await until(`sandbox ${id}'s processes to exit`, async () => {
        await writeFile(join(freezer, "freezer.state"), "FROZEN").catch(() => undefined);
        const pids = await readPids(procs);
        for (const pid of pids) killQuietly(pid);
        await writeFile(join(freezer, "freezer.state"), "THAWED").catch(() => undefined);
        return pids.length === 0;
      });
    }
    // The other hierarchies may still hold a process that joined only them (a launcher
    // interrupted between two `echo $$ >` lines).
    for (const dir of this.paths(id)) {
      await until(`cgroup ${dir} to empty`, async () => {
        const pids = await readPids(join(dir, "cgroup.procs"));
        for (const pid of pids) killQuietly(pid);
        return pids.length === 0;
      });
      await removeCgroupDir(dir);
    }
  }

  members(id: string): Promise<number[]> {
    return readPids(join(this.dir("freezer", id), "cgroup.procs"));
  }

  async usage(id: string): Promise<CgroupUsage> {
    const [cpuUsageNs, memoryBytes, memoryLimitBytes, pids] = await Promise.all([
      readNumber(join(this.dir("cpuacct", id), "cpuacct.usage")),
      readNumber(join(this.dir("memory", id), "memory.usage_in_bytes")),
      readNumber(join(this.dir("memory", id), "memory.limit_in_bytes")),
      readNumber(join(this.dir("pids", id), "pids.current")),
    ]);
    return { cpuUsageNs, memoryBytes, memoryLimitBytes, pids };
  }

  async oomKills(id: string): Promise<number> {
    return (await readKeyed(join(this.dir("memory", id), "memory.oom_control"))).get("oom_kill") ?? 0;
  }
}
