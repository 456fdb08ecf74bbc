/**
 * Background processes of an identity launcher (an agent that lives inside its sandbox: the
 * files below are the sandbox's own). Their whole state lives in files under
 * `<stateDir>/processes/<id>/`, so an agent started later (after the previous one crashed or was
 * restarted) still lists them, reattaches to their output and signals them:
 *   meta.json   argv, start time, the wrapper's pid and its start time (against pid reuse)
 *   output.log  stdout and stderr, written by the process itself through an fd the agent opened
 *   exit        the exit code, written by a tiny wrapper shell when the command ends
 * Neither the output nor the exit code needs the agent to stay alive.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { AttachOptions, BackgroundLauncher, BackgroundProcessInfo, LaunchRequest } from "@polydev/core";
import { notFound, PolydevError } from "@polydev/core";
import { groupMembers, liveStartTime, signalPid, wrapperChain } from "./process-tree.js";

interface ProcessMeta {
  id: string;
  argv: string[];
  startedAt: number;
  /** The wrapper's host pid, which is also the process group of everything below it. */
  pid: number;
  pidStartTime: number | undefined;
  /** Generations from the wrapper down to the command. */
  depth: number;
}

// `trap :` keeps it alive through catchable signals aimed at its group, so it still records
// the code; traps reset on exec, so the command is unaffected.
const WRAPPER = 'trap : HUP INT QUIT TERM USR1 USR2; f=$1; shift; "$@"; echo $? > "$f.tmp"; mv "$f.tmp" "$f"';
/** How often a following reader looks for new output; logs are not latency-critical. */
const FOLLOW_POLL_MS = 50;
const READ_CHUNK_BYTES = 64 * 1024;
const ID_PATTERN = /^proc_[0-9a-f]{12}$/;

export class LocalBackgroundProcesses implements BackgroundLauncher {
  private readonly root: string;

  constructor(stateDir: string) {
    this.root = join(stateDir, "processes");
  }

  async start(request: LaunchRequest): Promise<BackgroundProcessInfo> {
    const argv = request.argv;
    const id = `proc_${randomBytes(6).toString("hex")}`;
    const dir = join(this.root, id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const output = openSync(join(dir, "output.log"), "a", 0o600);
    let pid: number | undefined;
    try {
      const child = spawn("/bin/sh", ["-c", WRAPPER, "sh", join(dir, "exit"), ...argv], {
        env: request.env,
        cwd: request.cwd,
        detached: true,
        stdio: ["ignore", output, output],
      });
      child.once("error", () => undefined);
      child.unref();
      pid = child.pid;
    } finally {
      closeSync(output);
    }
    if (pid === undefined)
      throw new PolydevError("command_failed", `could not start ${argv[0] ?? "the process"}`);
    const meta: ProcessMeta = {
      id,
      argv,
      startedAt: Date.now(),
      pid,
      pidStartTime: await liveStartTime(pid),
      depth: 1,
    };
    await writeFile(join(dir, "meta.json.tmp"), JSON.stringify(meta), { mode: 0o600 });
    await rename(join(dir, "meta.json.tmp"), join(dir, "meta.json"));
    return this.describe(meta);
  }

  async list(): Promise<BackgroundProcessInfo[]> {
    const ids = await readdir(this.root).catch(() => [] as string[]);
    const infos = await Promise.all(ids.map((id) => this.get(id).catch(() => undefined)));
    return infos
      .filter((info): info is BackgroundProcessInfo => info !== undefined)
      .sort((a, b) => a.startedAt - b.startedAt);
  }

  async get(id: string): Promise<BackgroundProcessInfo> {
    return this.describe(await this.meta(id));
  }

  /**
   * Signals every process in the command's process group except the wrappers above it (the
   * exit-recording shell, and launcher wrappers such as nsenter that would die of the signal
   * instead of passing it on, taking the real exit code with them).
   */
  async signal(id: string, signal: NodeJS.Signals): Promise<void> {
    const meta = await this.meta(id);
    const notRunning = new PolydevError("process_not_running", `process ${id} has already exited`);
    if ((await this.describe(meta)).state !== "running") throw notRunning;
    const wrappers = new Set(await wrapperChain(meta.pid, meta.depth));
    const targets = (await groupMembers(meta.pid)).filter((pid) => !wrappers.has(pid));
    let delivered = false;
    for (const pid of targets) delivered = signalPid(pid, signal) || delivered;
    if (!delivered) throw notRunning;
  }

  /** The combined output from `fromOffset`; with `follow`, until the process has exited. */
  async attach(id: string, options: AttachOptions = {}): Promise<Readable> {
    const meta = await this.meta(id);
    const file = join(this.root, meta.id, "output.log");
    const follow = options.follow ?? true;
    const signal = options.signal;
    let position = options.fromOffset ?? 0;
    const hasExited = async (): Promise<boolean> => (await this.describe(meta)).state === "exited";
    const handle = await open(file, "r");
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        for (;;) {
          if (signal?.aborted) return;
          // Checked before the read: output written before the exit is then always read.
          const exited = follow && (await hasExited());
          const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
          const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK_BYTES, position);
          if (bytesRead > 0) {
            position += bytesRead;
            yield buffer.subarray(0, bytesRead);
            continue;
          }
          if (!follow || exited) return;
          await sleep(FOLLOW_POLL_MS, undefined, signal ? { signal } : {}).catch(() => undefined);
        }
      } finally {
        await handle.close();
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  private async meta(id: string): Promise<ProcessMeta> {
    if (!ID_PATTERN.test(id)) throw notFound("process", id);
    try {
      return JSON.parse(await readFile(join(this.root, id, "meta.json"), "utf8")) as ProcessMeta;
    } catch {
      throw notFound("process", id);
    }
  }

  private async describe(meta: ProcessMeta): Promise<BackgroundProcessInfo> {
    const dir = join(this.root, meta.id);
    const readExit = (): Promise<string | undefined> =>
      readFile(join(dir, "exit"), "utf8").catch(() => undefined);
    const [outputStat, exitText] = await Promise.all([
      stat(join(dir, "output.log")).catch(() => undefined),
      readExit(),
    ]);
    const base = {
      id: meta.id,
      argv: meta.argv,
      startedAt: meta.startedAt,
      outputBytes: outputStat?.size ?? 0,
    };
    const exited = (text: string): BackgroundProcessInfo => ({
      ...base,
      state: "exited",
      exitCode: Number.parseInt(text, 10),
      signal: null,
    });
    if (exitText !== undefined) return exited(exitText);
    const alive = meta.pidStartTime !== undefined && (await liveStartTime(meta.pid)) === meta.pidStartTime;
    if (alive) return { ...base, state: "running", exitCode: null, signal: null };
    // It may have recorded its exit between the first look and the liveness check.
    const lateExit = await readExit();
    if (lateExit !== undefined) return exited(lateExit);
    // The wrapper is gone without recording an exit: it was killed (SIGKILL to the group, or the
    // sandbox torn down), so the command's own exit code is unknown.
    return { ...base, state: "exited", exitCode: null, signal: "SIGKILL" };
  }
}
