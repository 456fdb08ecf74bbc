/**
 * Background processes whose state lives in files under the agent's state directory, so that an
 * agent started later (after a server crash) still lists them, reattaches to their output and
 * signals them. Output goes straight from the process to a log file the agent opened, and a tiny
 * host-side wrapper records the exit code: neither needs the agent to stay alive.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, open, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { AttachOptions, BackgroundProcessInfo, LaunchCommand, SandboxLauncher } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { descendant, isRunning, processStartTime, signalPid } from "./process-tree.js";

interface Meta {
  id: string;
  argv: string[];
  startedAt: number;
  pid: number;
  startTime: number | undefined;
  /** Generations from the wrapper's pid down to the command. */
  depth: number;
}

// Runs on the host, outside the sandbox. `trap :` keeps the wrapper alive through stray
// signals while handlers reset on exec, so the command still gets default dispositions.
const WRAPPER = 'trap : TERM INT HUP QUIT; f=$1; shift; "$@"; echo $? > "$f.tmp" && mv "$f.tmp" "$f"';
/** How often a following reader checks for new output; output is not latency-critical. */
const FOLLOW_POLL_MS = 50;
const READ_CHUNK_BYTES = 64 * 1024;

export class BackgroundProcesses {
  private readonly root: string;

  constructor(launcher: SandboxLauncher) {
    this.root = join(launcher.stateDir, "processes");
  }

  async start(argv: string[], command: LaunchCommand): Promise<BackgroundProcessInfo> {
    const id = `proc_${randomBytes(6).toString("hex")}`;
    const dir = join(this.root, id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const output = openSync(join(dir, "output.log"), "a", 0o600);
    try {
      const child = spawn(
        "/bin/sh",
        ["-c", WRAPPER, "sh", join(dir, "exit"), command.file, ...command.args],
        {
          env: command.env,
          ...(command.hostCwd === undefined ? {} : { cwd: command.hostCwd }),
          detached: true,
          stdio: ["ignore", output, output],
        },
      );
      child.unref();
      const pid = child.pid;
      if (pid === undefined)
        throw new PolydevError("command_failed", `could not start ${argv[0] ?? "process"}`);
      const meta: Meta = {
        id,
        argv,
        startedAt: Date.now(),
        pid,
        startTime: await processStartTime(pid),
        depth: command.wrapperDepth + 1,
      };
      await writeFile(join(dir, "meta.json"), JSON.stringify(meta), { mode: 0o600 });
      return this.describe(meta);
    } finally {
      closeSync(output);
    }
  }

  async list(): Promise<BackgroundProcessInfo[]> {
    const ids = await readdir(this.root).catch(() => [] as string[]);
    const infos = await Promise.all(ids.map((id) => this.get(id).catch(() => undefined)));
    return infos
      .filter((i): i is BackgroundProcessInfo => i !== undefined)
      .sort((a, b) => a.startedAt - b.startedAt);
  }

  async get(id: string): Promise<BackgroundProcessInfo> {
    return this.describe(await this.meta(id));
  }

  async signal(id: string, signal: NodeJS.Signals): Promise<void> {
    const meta = await this.meta(id);
    const info = await this.describe(meta);
    if (info.state !== "running")
      throw new PolydevError("process_not_running", `process ${id} has already exited`);
    const target = await descendant(meta.pid, meta.depth);
    if (target === undefined || !signalPid(target, signal)) {
      throw new PolydevError("process_not_running", `process ${id} has already exited`);
    }
  }

  /** The combined output from `fromOffset`; with `follow`, until the process has exited. */
  async attach(id: string, options: AttachOptions = {}): Promise<Readable> {
    const meta = await this.meta(id);
    const file = join(this.root, meta.id, "output.log");
    const follow = options.follow ?? true;
    const signal = options.signal;
    const isDone = async (): Promise<boolean> => (await this.describe(meta)).state === "exited";
    async function* chunks(): AsyncGenerator<Buffer> {
      const handle = await open(file, "r");
      try {
        let position = options.fromOffset ?? 0;
        const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
        for (;;) {
          if (signal?.aborted) return;
          const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK_BYTES, position);
          if (bytesRead > 0) {
            position += bytesRead;
            yield Buffer.from(buffer.subarray(0, bytesRead));
            continue;
          }
          if (!follow) return;
          // Exited: one last read catches output written between the read and the check.
          if (await isDone()) {
            const last = await handle.read(buffer, 0, READ_CHUNK_BYTES, position);
            if (last.bytesRead === 0) return;
            position += last.bytesRead;
            yield Buffer.from(buffer.subarray(0, last.bytesRead));
            continue;
          }
          await sleep(FOLLOW_POLL_MS, undefined, signal ? { signal } : {}).catch(() => undefined);
        }
      } finally {
        await handle.close();
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  private async meta(id: string): Promise<Meta> {
    if (!/^proc_[0-9a-f]{12}$/.test(id)) throw new PolydevError("not_found", `process ${id} does not exist`);
    try {
      return JSON.parse(await readFile(join(this.root, id, "meta.json"), "utf8")) as Meta;
    } catch {
      throw new PolydevError("not_found", `process ${id} does not exist`);
    }
  }

  private async describe(meta: Meta): Promise<BackgroundProcessInfo> {
    const dir = join(this.root, meta.id);
    const outputBytes = (await stat(join(dir, "output.log")).catch(() => undefined))?.size ?? 0;
    const exitText = await readFile(join(dir, "exit"), "utf8").catch(() => undefined);
    const base = { id: meta.id, argv: meta.argv, startedAt: meta.startedAt, outputBytes };
    if (exitText !== undefined) {
      return { ...base, state: "exited", exitCode: Number(exitText.trim()), signal: null };
    }
    const alive = isRunning(meta.pid) && (await processStartTime(meta.pid)) === meta.startTime;
    if (alive) return { ...base, state: "running", exitCode: null, signal: null };
    // The wrapper died without recording an exit (killed with its sandbox): the code is unknown.
    return { ...base, state: "exited", exitCode: null, signal: "SIGKILL" };
  }
}
