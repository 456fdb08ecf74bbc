/**
 * QEMU's `microvm` machine as the driver's VMM. Host hardening of the QEMU process, the part of
 * the host a guest can attack: it runs as the sandbox's own unprivileged uid, with an empty
 * environment, no descriptors of ours (stdin/stdout ignored, stderr a log file), no defaults or
 * user config, QEMU's seccomp sandbox with every optional deny on, no network device unless
 * asked, and its console either a file we write to only during the boot snapshot or a socket
 * nobody reads (QEMU then drops the bytes: a guest cannot make the host store them).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, watch } from "node:fs";
import { chown, open, readFile, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { PolydevError } from "@polydev/core";
import { consoleSocket } from "./guest-console.js";
import { GUEST_MAC } from "./link-protocol.js";
import { QmpClient } from "./qmp.js";
import { checkVmSocket } from "./vm-socket.js";
import type { RunningVm, StateOptions, VmConfig, VmDisk, Vmm } from "./vmm.js";

export type QemuAccel = "tcg" | "kvm";

export interface QemuVmmOptions {
  /** Default /usr/bin/qemu-system-x86_64 (Debian's qemu-system-x86). */
  qemuPath?: string;
  /** "tcg" (software, works anywhere) or "kvm"; the driver decides by probe (see microvm-driver.ts). */
  accel: QemuAccel;
  /** How long QEMU may take to open its control socket; default 10 000 ms. */
  startTimeoutMs?: number;
}

const SECCOMP = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/**
 * TCG's translation cache. At 64 MiB a sandbox running node, python and bash flushed it every
 * few seconds and translated everything again (HMP `info jit`: 6 flushes in a 10 s workload, 1
 * at 256 MiB); 256 MiB made each exec, terminal and python start-up 25-50% faster. It is host
 * memory only as far as the guest's code fills it.
 */
export const TCG_CACHE_MB = 256;

export function qemuArgs(config: VmConfig, accel: QemuAccel): string[] {
  const args = [
    "-M",
    "microvm,rtc=on",
    "-accel",
    // TCG's translation cache defaults to 1 GiB: held to TCG_CACHE_MB so a busy guest stays
    // inside its host cgroup (guest RAM plus QEMU's overhead, which counts it).
    accel === "tcg" ? `tcg,tb-size=${TCG_CACHE_MB}` : accel,
    ...(accel === "kvm" ? ["-cpu", "host"] : []),
    "-m",
    String(config.memoryMb),
    "-smp",
    String(config.vcpus),
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-no-reboot",
    "-sandbox",
    SECCOMP,
    "-kernel",
    config.kernel,
    "-initrd",
    config.initrd,
    "-append",
    config.cmdline,
    "-qmp",
    `unix:${join(config.runDir, "qmp.sock")},server=on,wait=off`,
    "-chardev",
    config.consoleLog === undefined
      ? `socket,id=console,path=${consoleSocket(config.runDir)},server=on,wait=off`
      : `file,id=console,path=${config.consoleLog}`,
    "-serial",
    "chardev:console",
    "-device",
    "virtio-serial-device",
    "-chardev",
    `socket,id=agent,path=${config.agentSocket},server=on,wait=off`,
    "-device",
    "virtserialport,chardev=agent,name=polydev.agent",
  ];
  for (const disk of config.disks) {
    args.push(
      "-drive",
      `id=${disk.serial},file=${disk.path},format=${disk.format},if=none${disk.readOnly ? ",readonly=on" : ",discard=unmap"}`,
      "-device",
      `virtio-blk-device,drive=${disk.serial},serial=${disk.serial}`,
    );
  }
  if (config.network !== undefined) {
    const tap = config.network.tap;
    args.push(
      "-netdev",
      // A hub port with nothing else on its hub: a NIC whose frames go nowhere (the template).
      tap === undefined ? "hubport,id=net0,hubid=0" : `tap,id=net0,ifname=${tap},script=no,downscript=no`,
      "-device",
      `virtio-net-device,netdev=net0,mac=${GUEST_MAC}`,
    );
  }
  if (config.memoryFile !== undefined) {
    args.push(
      "-object",
      `memory-backend-file,id=ram,size=${config.memoryMb}M,mem-path=${config.memoryFile.path},share=${config.memoryFile.share ? "on" : "off"}`,
      "-machine",
      "memory-backend=ram",
    );
  }
  if (config.incoming) args.push("-incoming", "defer");
  return args;
}

const NSENTER = "/usr/bin/nsenter";

/**
 * How QEMU is started: directly as the VM's uid, or (a VM with a network namespace) through
 * nsenter, which joins the namespace as root and then drops to the VM's uid and gid with no
 * supplementary groups before it execs QEMU (same pid, so isQemuOf still finds it).
 */
export function qemuCommand(
  qemuPath: string,
  config: VmConfig,
  accel: QemuAccel,
): { file: string; args: string[]; ids: { uid?: number; gid?: number } } {
  const args = qemuArgs(config, accel);
  const netns = config.network?.netns;
  if (netns === undefined) return { file: qemuPath, args, ids: { uid: config.uid, gid: config.gid } };
  return {
    file: NSENTER,
    args: [`--net=${netns}`, `--setgid=${config.gid}`, `--setuid=${config.uid}`, "--", qemuPath, ...args],
    ids: {},
  };
}

/** Paths QEMU's option parser would split (`,`) or that are not ours: refused early. */
function checkPaths(config: VmConfig): void {
  for (const path of [
    ...(config.network?.netns === undefined ? [] : [config.network.netns]),
    config.runDir,
    config.kernel,
    config.initrd,
    config.agentSocket,
    ...config.disks.map((d) => d.path),
    ...(config.memoryFile ? [config.memoryFile.path] : []),
  ]) {
    if (!path.startsWith("/") || /[,\n]/.test(path)) {
      throw new PolydevError("internal", `path ${path} cannot be given to QEMU`);
    }
  }
  const tap = config.network?.tap;
  if (tap !== undefined && !/^[a-z][a-z0-9]{0,14}$/.test(tap)) {
    throw new PolydevError("internal", `tap ${tap} cannot be given to QEMU`);
  }
}

export class QemuVmm implements Vmm {
  readonly name = "qemu";
  readonly networks = true;
  readonly forks = true;
  private readonly qemuPath: string;
  private readonly startTimeoutMs: number;

  constructor(private readonly options: QemuVmmOptions) {
    this.qemuPath = options.qemuPath ?? "/usr/bin/qemu-system-x86_64";
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
  }

  async unavailable(): Promise<string | undefined> {
    if (!existsSync(this.qemuPath))
      return `QEMU (apt-get install qemu-system-x86; looked at ${this.qemuPath})`;
    if (!existsSync("/usr/bin/qemu-img")) return "qemu-img (apt-get install qemu-utils)";
    if (this.options.accel === "kvm" && !existsSync("/dev/kvm")) return "/dev/kvm (KVM)";
    return undefined;
  }

  async start(config: VmConfig, signal?: AbortSignal): Promise<RunningVm> {
    checkPaths(config);
    const stderr = await open(config.stderrLog, "a", 0o600);
    let child: ReturnType<typeof spawn>;
    try {
      const command = qemuCommand(this.qemuPath, config, this.options.accel);
      child = spawn(command.file, command.args, {
        env: {},
        cwd: config.runDir,
        stdio: [
          "ignore",
          "ignore",
          stderr.fd,
          ...(config.memoryFile?.fd === undefined ? [] : [config.memoryFile.fd]),
        ],
        ...command.ids,
        detached: true,
      });
    } finally {
      await stderr.close();
    }
    const pid = child.pid;
    const exited = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    child.unref();
    if (pid === undefined) {
      throw new PolydevError("sandbox_failed", `QEMU did not start: ${await tail(config.stderrLog)}`);
    }
    try {
      const qmp = await this.connectQmp(config, exited, signal);
      return new QemuVm(pid, exited, qmp, config, child);
    } catch (error) {
      killPid(pid);
      child.ref();
      await exited;
      throw error;
    }
  }

  async attach(config: VmConfig, pid: number, signal?: AbortSignal): Promise<RunningVm> {
    const socket = await checkVmSocket(join(config.runDir, "qmp.sock"), config.uid);
    const qmp = await QmpClient.connect(socket, signal).catch((error: unknown) => {
      throw new PolydevError("sandbox_not_running", `the VM's control socket is gone: ${String(error)}`);
    });
    const exited = new Promise<void>((resolve) => qmp.onClose(resolve));
    return new QemuVm(pid, exited, qmp, config);
  }

  /** The control socket appears during QEMU's start-up: watched for, never polled on a timer. */
  private async connectQmp(
    config: VmConfig,
    exited: Promise<void>,
    signal?: AbortSignal,
  ): Promise<QmpClient> {
    const socketPath = join(config.runDir, "qmp.sock");
    const deadline = AbortSignal.timeout(this.startTimeoutMs);
    const waitSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
    await new Promise<void>((resolve, reject) => {
      const watcher = watch(config.runDir);
      const done = (error?: Error): void => {
        watcher.close();
        waitSignal.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve();
      };
      const onAbort = (): void =>
        done(new PolydevError("timeout", "QEMU did not open its control socket in time"));
      watcher.on("change", () => {
        if (existsSync(socketPath)) done();
      });
      watcher.on("error", (error) => done(error));
      waitSignal.addEventListener("abort", onAbort, { once: true });
      exited.then(async () =>
        done(new PolydevError("sandbox_failed", `QEMU exited at start: ${await tail(config.stderrLog)}`)),
      );
      if (existsSync(socketPath)) done();
    });
    // The file exists from bind on; listen follows within microseconds: a refused connect is
    // retried until then (bounded by the same deadline). A resume finds the previous QEMU's
    // socket file, which the new QEMU unlinks before its bind: ENOENT in between, retried too.
    for (;;) {
      try {
        return await QmpClient.connect(socketPath, waitSignal);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if ((code !== "ECONNREFUSED" && code !== "ENOENT") || waitSignal.aborted) throw error;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }
  }
}

class QemuVm implements RunningVm {
  constructor(
    readonly pid: number,
    readonly exited: Promise<void>,
    private readonly qmp: QmpClient,
    private readonly config: VmConfig,
    /** Unref'd while the VM runs (a server may exit and leave it); held while we wait on it. */
    private readonly child?: ChildProcess,
  ) {}

  async restore(
    stateFile: string,
    signal?: AbortSignal,
    options: StateOptions & { run?: boolean } = {},
  ): Promise<void> {
    const socketPath = join(this.config.runDir, "incoming.sock");
    // A state saved from a paused VM loads paused (QEMU keeps the source's run state): the
    // guest runs once the load completed and we said `cont`.
    const loaded = new Promise<void>((resolve, reject) => {
      const off = this.qmp.onEvent((event) => {
        if (event.event !== "MIGRATION") return;
        if (event.data?.status === "completed") {
          off();
          resolve();
        } else if (event.data?.status === "failed") {
          off();
          reject(new PolydevError("sandbox_failed", "QEMU could not load the saved state"));
        }
      });
      this.exited.then(async () =>
        reject(
          new PolydevError(
            "sandbox_failed",
            `QEMU exited while restoring: ${await tail(this.config.stderrLog)}`,
          ),
        ),
      );
      this.qmp.onClose(() =>
        reject(new PolydevError("sandbox_failed", "QEMU's control connection closed while restoring")),
      );
      signal?.addEventListener("abort", () => reject(new PolydevError("timeout", "restore aborted")), {
        once: true,
      });
    });
    const running = options.run === false ? loaded : loaded.then(() => this.qmp.execute("cont"));
    running.catch(() => undefined);
    await this.qmp.execute("migrate-set-capabilities", {
      capabilities: migrationCapabilities(this.config, options),
    });
    await this.qmp.execute("migrate-incoming", { uri: `unix:${socketPath}` });
    // QEMU may close the socket as soon as it has read the end of the state: how the stream
    // ended matters only if the load did not complete.
    const streamed = pipeline(
      createReadStream(stateFile, { highWaterMark: 1024 * 1024 }),
      connect(socketPath),
      signal ? { signal } : {},
    );
    streamed.catch(() => undefined);
    try {
      await running;
    } catch (error) {
      await streamed.catch((streamError: unknown) => {
        throw new PolydevError("sandbox_failed", `could not stream the saved state: ${String(streamError)}`, {
          cause: error,
        });
      });
      throw error;
    }
    await rm(socketPath, { force: true });
  }

  async pause(): Promise<void> {
    await this.qmp.execute("stop");
  }

  async resume(): Promise<void> {
    // After a save QEMU is "postmigrate" with its disks let go: `cont` takes them back and runs.
    await this.qmp.execute("cont");
  }

  async addOverlay(serial: VmDisk["serial"], overlay: string): Promise<void> {
    if (!overlay.startsWith("/") || /[,\n]/.test(overlay)) {
      throw new PolydevError("internal", `path ${overlay} cannot be given to QEMU`);
    }
    const node = `${serial}-${randomBytes(6).toString("hex")}`;
    // The overlay's backing file is attached by blockdev-snapshot (the disk's current node), not
    // opened again from the path in its header.
    await this.qmp.execute("blockdev-add", {
      driver: "qcow2",
      "node-name": node,
      discard: "unmap",
      file: { driver: "file", filename: overlay },
      backing: null,
    });
    await this.qmp.execute("blockdev-snapshot", { node: serial, overlay: node });
  }

  async save(stateFile: string, signal?: AbortSignal, options: StateOptions = {}): Promise<void> {
    const socketPath = join(this.config.runDir, "outgoing.sock");
    await rm(socketPath, { force: true });
    const server = createServer();
    const received = new Promise<void>((resolve, reject) => {
      server.once("connection", (socket) => {
        pipeline(socket, createWriteStream(stateFile, { mode: 0o600 }), signal ? { signal } : {}).then(
          resolve,
          reject,
        );
      });
      server.once("error", reject);
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      // QEMU runs as the VM's uid: it must be able to connect.
      await chown(socketPath, this.config.uid, this.config.gid);
      await this.qmp.execute("migrate-set-capabilities", {
        capabilities: migrationCapabilities(this.config, options),
      });
      // The default bandwidth cap (for live migration over a network) would make a save take seconds.
      await this.qmp.execute("migrate-set-parameters", { "max-bandwidth": 64 * 1024 * 1024 * 1024 });
      const completed = new Promise<void>((resolve, reject) => {
        const off = this.qmp.onEvent((event) => {
          if (event.event !== "MIGRATION") return;
          if (event.data?.status === "completed") {
            off();
            resolve();
          } else if (event.data?.status === "failed") {
            off();
            reject(new PolydevError("sandbox_failed", "QEMU could not save the VM"));
          }
        });
        // A VM ended meanwhile (destroyed) sends no event: its end fails the save.
        this.exited.then(() => reject(new PolydevError("sandbox_failed", "QEMU exited while saving")));
        this.qmp.onClose(() =>
          reject(new PolydevError("sandbox_failed", "QEMU's control connection closed while saving")),
        );
      });
      completed.catch(() => undefined);
      await this.qmp.execute("migrate", { uri: `unix:${socketPath}` });
      await Promise.all([completed, received]);
    } finally {
      server.close();
      await rm(socketPath, { force: true });
    }
  }

  async kill(): Promise<void> {
    this.qmp.close();
    this.child?.ref();
    if (await isQemuOf(this.pid, this.config.runDir)) killPid(this.pid);
    await this.exited;
    this.child?.unref();
  }

  detach(): void {
    this.qmp.close();
  }
}

/**
 * A VM whose RAM is a file saves and loads with x-ignore-shared (the stream then carries the
 * block's address; a shared block's pages stay out of it): both ends of a state agree.
 */
function migrationCapabilities(
  config: VmConfig,
  options: StateOptions,
): { capability: string; state: boolean }[] {
  const ignoreShared = options.ignoreShared ?? config.memoryFile !== undefined;
  return [
    { capability: "events", state: true },
    { capability: "x-ignore-shared", state: ignoreShared },
  ];
}

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Whether `pid` is still the QEMU of this VM (not a reused pid). */
export async function isQemuOf(pid: number, runDir: string): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes(`${join(runDir, "qmp.sock")},`);
  } catch {
    return false;
  }
}

export async function tail(path: string, maxBytes = 8192): Promise<string> {
  try {
    const file = await open(path, "r");
    try {
      const { size } = await file.stat();
      const length = Math.min(size, maxBytes);
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, size - length);
      return buffer.toString("utf8");
    } finally {
      await file.close();
    }
  } catch {
    return "";
  }
}
