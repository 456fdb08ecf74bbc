/**
 * The embedded default driver: each sandbox is a bubblewrap process tree in fresh user, pid,
 * mount, ipc, uts, cgroup and network namespaces, running as its own unprivileged host uid,
 * held in cgroups. No process per sandbox beyond bubblewrap and a sleeping init: the agent runs
 * at the host edge and enters the sandbox for every process it starts.
 */

import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { accessSync, closeSync, constants, openSync } from "node:fs";
import { open, readdir, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { createInProcessAgent } from "@polydev/agent";
import type {
  AgentConnection,
  DriverInfo,
  ObservedSandbox,
  SandboxDriver,
  SandboxHandle,
  SandboxSpec,
  SandboxStats,
} from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { bwrapArgs, ETC_REPLACEMENTS } from "./bwrap-args.js";
import type { Cgroups } from "./cgroups.js";
import { detectCgroups } from "./cgroups.js";
import { JOIN_CGROUPS_AND_EXEC, namespaceLauncher, SANDBOX_HOME } from "./launcher.js";
import { isSameProcess, startTimeOf } from "./process-info.js";
import type { SandboxMeta } from "./sandbox-files.js";
import { SandboxFiles } from "./sandbox-files.js";

export interface DriverLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface NamespaceDriverOptions {
  /** Host directory for per-sandbox state (mode 700). */
  rootDir: string;
  log?: DriverLog;
  /** First host uid given to sandboxes; each sandbox gets its own (default 200000). */
  hostUidBase?: number;
  /** Name of the cgroup that holds all sandboxes (default "polydev"). */
  cgroupName?: string;
  /** How long bubblewrap may take to report ready before the create fails (default 10 s). */
  startTimeoutMs?: number;
}

const HOST_UID_RANGE = 1_000_000;
const CONSOLE_TAIL_BYTES = 64 * 1024;
const REQUIRED_TOOLS = [
  ["/usr/bin/bwrap", "bubblewrap"],
  ["/usr/bin/nsenter", "util-linux"],
  ["/usr/bin/setpriv", "util-linux"],
] as const;
const SLIRP = "/usr/bin/slirp4netns";

const silentLog: DriverLog = { info: () => undefined, warn: () => undefined };

export class NamespaceDriver implements SandboxDriver {
  readonly name = "namespace";
  private readonly files: SandboxFiles;
  private readonly cgroups: Cgroups;
  private readonly log: DriverLog;
  private readonly hostUidBase: number;
  private readonly startTimeoutMs: number;
  private usedUids: Set<number> | undefined;

  constructor(options: NamespaceDriverOptions) {
    this.files = new SandboxFiles(options.rootDir);
    this.cgroups = detectCgroups(options.cgroupName ?? "polydev");
    this.log = options.log ?? silentLog;
    this.hostUidBase = options.hostUidBase ?? 200_000;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
  }

  async probe(): Promise<DriverInfo> {
    for (const [path, pkg] of REQUIRED_TOOLS) {
      try {
        accessSync(path, constants.X_OK);
      } catch {
        throw new PolydevError(
          "driver_unavailable",
          `${path} is missing; install it with: apt-get install ${pkg}`,
        );
      }
    }
    const maxUserNs = Number(
      (await readFile("/proc/sys/user/max_user_namespaces", "utf8").catch(() => "1")).trim(),
    );
    if (maxUserNs === 0) {
      throw new PolydevError(
        "driver_unavailable",
        "user namespaces are disabled: set sysctl user.max_user_namespaces > 0",
      );
    }
    if (process.getuid?.() !== 0) {
      throw new PolydevError(
        "driver_unavailable",
        "the namespace driver runs as root (it gives each sandbox its own uid and cgroup)",
      );
    }
    const features = [`cgroup-v${this.cgroups.version}`, "hibernate"];
    if (canExecute(SLIRP)) features.push("egress");
    return { name: this.name, features };
  }

  async create(spec: SandboxSpec): Promise<SandboxHandle> {
    if (spec.network === "egress" && !canExecute(SLIRP)) {
      throw new PolydevError(
        "driver_unavailable",
        'network "egress" needs slirp4netns: apt-get install slirp4netns',
      );
    }
    const hostUid = await this.allocateUid();
    const id = spec.id;
    let bwrap: ChildProcess | undefined;
    try {
      await Promise.all([
        this.files
          .prepare(id, spec.network)
          .then(() => writeFile(`${this.files.dir(id)}/env.json`, JSON.stringify(spec.env), { mode: 0o600 })),
        this.cgroups.create(id, spec.limits),
      ]);
      const consoleFd = openSync(this.files.consoleLog(id), "a", 0o600);
      const etcFds = ETC_REPLACEMENTS.map((name) => openSync(this.files.etcFile(id, name), "r"));
      let ready: { bwrapPid: number; initPid: number };
      try {
        // slirp4netns must enter the netns without entering the sandbox's user namespace (it
        // would lose its rights over the netns), so egress sandboxes get a host-owned netns from
        // `unshare` and the outer bubblewrap process (still in the host's user namespace) is
        // what slirp4netns attaches to.
        const netPrefix = spec.network === "egress" ? ["/usr/bin/unshare", "--net", "--"] : [];
        bwrap = this.spawnJoined(
          [
            ...netPrefix,
            "/usr/bin/setpriv",
            "--reuid",
            String(hostUid),
            "--regid",
            String(hostUid),
            "--clear-groups",
            "--",
            "/usr/bin/bwrap",
            ...bwrapArgs(spec.limits.diskMb * 1024 * 1024, spec.network),
          ],
          id,
          ["ignore", "pipe", consoleFd, "pipe", ...etcFds],
        );
        ready = await this.waitUntilReady(bwrap);
      } finally {
        for (const fd of [consoleFd, ...etcFds]) closeSync(fd);
      }
      const initStartTime = await startTimeOf(ready.initPid);
      if (initStartTime === undefined) throw new Error("the sandbox's init exited right after starting");
      const slirpPid = spec.network === "egress" ? await this.startEgress(id, ready.bwrapPid) : null;
      const meta: SandboxMeta = {
        sandboxId: id,
        hostUid,
        bwrapPid: ready.bwrapPid,
        initPid: ready.initPid,
        initStartTime,
        network: spec.network,
        slirpPid,
        createdAt: Date.now(),
      };
      await this.files.writeMeta(meta);
      return this.handleOf(meta);
    } catch (error) {
      const consoleTail = await this.consoleTail(id);
      await this.cgroups.destroy(id).catch(() => undefined);
      await rm(this.files.dir(id), { recursive: true, force: true }).catch(() => undefined);
      this.usedUids?.delete(hostUid);
      throw new PolydevError(
        "sandbox_failed",
        `sandbox ${id} did not start: ${error instanceof Error ? error.message : String(error)}`,
        { details: { consoleTail }, cause: error },
      );
    }
  }

  async connect(handle: SandboxHandle): Promise<AgentConnection> {
    const meta = await this.metaOf(handle);
    if (!(await isSameProcess(meta.initPid, meta.initStartTime))) {
      throw new PolydevError("sandbox_not_running", `sandbox ${handle.sandboxId} is not running`);
    }
    const env = await this.sandboxEnv(handle.sandboxId);
    return createInProcessAgent(
      namespaceLauncher({
        initPid: meta.initPid,
        procsFiles: this.cgroups.procsFiles(handle.sandboxId),
        stateDir: this.files.stateDir(handle.sandboxId),
        env,
      }),
    );
  }

  async hibernate(handle: SandboxHandle): Promise<void> {
    await this.cgroups.freeze(handle.sandboxId);
  }

  async resume(handle: SandboxHandle): Promise<void> {
    await this.cgroups.thaw(handle.sandboxId);
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    const id = handle.sandboxId;
    await this.cgroups.destroy(id);
    // Processes outside the cgroup would only exist if a create was interrupted mid-way.
    const meta = await this.files.readMeta(id);
    if (meta) {
      for (const pid of [meta.bwrapPid, meta.slirpPid]) {
        if (pid !== null && (await startTimeOf(pid)) !== undefined) killQuietly(pid);
      }
      this.usedUids?.delete(meta.hostUid);
    }
    await rm(this.files.dir(id), { recursive: true, force: true });
  }

  async list(): Promise<ObservedSandbox[]> {
    const ids = new Set<string>(await this.cgroups.list());
    for (const entry of await readdir(this.files.rootDir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) ids.add(entry.name);
    }
    const observed: ObservedSandbox[] = [];
    for (const id of ids) {
      const meta = await this.files.readMeta(id);
      const handle: SandboxHandle = meta
        ? this.handleOf(meta)
        : { sandboxId: id, driver: this.name, data: {} };
      const alive = meta ? await isSameProcess(meta.initPid, meta.initStartTime) : false;
      observed.push({ sandboxId: id, handle, alive });
    }
    return observed;
  }

  async isAlive(handle: SandboxHandle): Promise<boolean> {
    const meta = await this.files.readMeta(handle.sandboxId);
    return meta !== undefined && (await isSameProcess(meta.initPid, meta.initStartTime));
  }

  async stats(handle: SandboxHandle): Promise<SandboxStats> {
    const meta = await this.metaOf(handle);
    const usage = await this.cgroups.usage(handle.sandboxId);
    // The home is a tmpfs inside the sandbox's mount namespace: reach it through its init.
    const fs = await statfs(`/proc/${meta.initPid}/root${SANDBOX_HOME}`).catch(() => undefined);
    const diskBytes = fs ? (fs.blocks - fs.bfree) * fs.bsize : 0;
    return { ...usage, diskBytes };
  }

  async logs(handle: SandboxHandle): Promise<string> {
    return this.consoleTail(handle.sandboxId);
  }

  private handleOf(meta: SandboxMeta): SandboxHandle {
    return { sandboxId: meta.sandboxId, driver: this.name, data: { ...meta } };
  }

  private async metaOf(handle: SandboxHandle): Promise<SandboxMeta> {
    const meta = await this.files.readMeta(handle.sandboxId);
    if (!meta)
      throw new PolydevError("sandbox_not_running", `sandbox ${handle.sandboxId} is not on this host`);
    return meta;
  }

  private async sandboxEnv(id: string): Promise<Record<string, string>> {
    const text = await readFile(`${this.files.dir(id)}/env.json`, "utf8").catch(() => "{}");
    return JSON.parse(text) as Record<string, string>;
  }

  /** Spawns a host command that joins the sandbox's cgroups before it execs. */
  private spawnJoined(argv: string[], id: string, stdio: ("ignore" | "pipe" | number)[]): ChildProcess {
    const procs = this.cgroups.procsFiles(id);
    const child = spawn(
      "/bin/sh",
      ["-c", JOIN_CGROUPS_AND_EXEC, "sh", String(procs.length), ...procs, ...argv],
      {
        env: { PATH: "/usr/bin:/bin" },
        stdio,
        detached: true,
      },
    );
    child.unref();
    return child;
  }

  /**
   * bubblewrap reports the init's host pid on its info fd as soon as it has cloned; the init
   * prints `ready` only once the whole root is built. Both are needed; neither is a sleep.
   */
  private waitUntilReady(bwrap: ChildProcess): Promise<{ bwrapPid: number; initPid: number }> {
    return new Promise((resolve, reject) => {
      let info = "";
      let stdout = "";
      let initPid: number | undefined;
      let isReady = false;
      const timer = setTimeout(
        () => finish(new Error(`not ready after ${this.startTimeoutMs} ms`)),
        this.startTimeoutMs,
      );
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        bwrap.stdio[3]?.destroy();
        bwrap.stdout?.destroy();
        bwrap.removeAllListeners("exit");
        if (error) {
          if (bwrap.pid !== undefined) killQuietly(bwrap.pid);
          reject(error);
        } else if (bwrap.pid !== undefined && initPid !== undefined) {
          resolve({ bwrapPid: bwrap.pid, initPid });
        }
      };
      const check = (): void => {
        if (initPid !== undefined && isReady) finish();
      };
      bwrap.stdio[3]?.on("data", (chunk: Buffer) => {
        info += chunk.toString();
        const match = /"child-pid"\s*:\s*(\d+)/.exec(info);
        if (match?.[1]) {
          initPid = Number(match[1]);
          check();
        }
      });
      bwrap.stdout?.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes("ready\n")) {
          isReady = true;
          check();
        }
      });
      bwrap.once("error", (error) => finish(error));
      bwrap.once("exit", (code, signal) =>
        finish(new Error(`bubblewrap exited (${signal ?? code}) before the sandbox was ready`)),
      );
    });
  }

  /** slirp4netns gives the sandbox's netns a tap device with NAT to the outside, but not to the host's loopback. */
  private async startEgress(id: string, netnsHolderPid: number): Promise<number> {
    const consoleFd = openSync(this.files.consoleLog(id), "a", 0o600);
    try {
      const slirp = this.spawnJoined(
        [
          SLIRP,
          "--configure",
          "--mtu=65520",
          "--disable-host-loopback",
          "--ready-fd=3",
          String(netnsHolderPid),
          "tap0",
        ],
        id,
        ["ignore", consoleFd, consoleFd, "pipe"],
      );
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error("slirp4netns did not become ready")),
          this.startTimeoutMs,
        );
        slirp.stdio[3]?.once("data", () => {
          clearTimeout(timer);
          slirp.stdio[3]?.destroy();
          slirp.removeAllListeners("exit");
          resolve();
        });
        slirp.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`slirp4netns exited with ${code}`));
        });
      });
      if (slirp.pid === undefined) throw new Error("slirp4netns did not start");
      return slirp.pid;
    } finally {
      closeSync(consoleFd);
    }
  }

  private async allocateUid(): Promise<number> {
    if (!this.usedUids) {
      this.usedUids = new Set();
      for (const entry of await readdir(this.files.rootDir).catch(() => [] as string[])) {
        const meta = await this.files.readMeta(entry);
        if (meta) this.usedUids.add(meta.hostUid);
      }
    }
    for (let offset = 1; offset < HOST_UID_RANGE; offset++) {
      const uid = this.hostUidBase + offset;
      if (!this.usedUids.has(uid)) {
        this.usedUids.add(uid);
        return uid;
      }
    }
    throw new PolydevError("limit_exceeded", "no free sandbox uid left on this host");
  }

  private async consoleTail(id: string): Promise<string> {
    try {
      const handle = await open(this.files.consoleLog(id), "r");
      try {
        const { size } = await handle.stat();
        const length = Math.min(size, CONSOLE_TAIL_BYTES);
        const buffer = Buffer.alloc(length);
        await handle.read(buffer, 0, length, size - length);
        return buffer.toString("utf8");
      } finally {
        await handle.close();
      }
    } catch {
      return "";
    }
  }
}

function canExecute(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}
