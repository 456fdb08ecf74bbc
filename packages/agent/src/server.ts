/**
 * The agent's serving side: one connection, many channels, one operation per channel. Every
 * process is started through the sandbox's launcher, so this code is the same whether it runs
 * at the host edge (namespace driver) or inside a guest.
 */

import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { posix } from "node:path";
import type { Duplex, Readable, Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { LaunchCommand, SandboxLauncher } from "@polydev/core";
import { AGENT_PROTOCOL_VERSION, isPolydevError, PolydevError } from "@polydev/core";
import * as pty from "node-pty";
import { BackgroundProcesses } from "./background.js";
import { parseEntries, parseSnapshot } from "./file-entries.js";
import type { FileOperation } from "./file-scripts.js";
import { fileError, scripts, validateRelativePath } from "./file-scripts.js";
import type { Channel, Json } from "./mux.js";
import { Mux } from "./mux.js";
import { descendant, killTree, signalGroup, signalPid } from "./process-tree.js";
import { Stream } from "./streams.js";

export const AGENT_VERSION = "0.1.0";
export const CAPABILITIES = ["exec", "pty", "files", "files.watch", "background", "ping"];

/** Small answers (listings, stat) are read whole; this bounds them. */
const MAX_SMALL_OUTPUT_BYTES = 16 * 1024 * 1024;

export interface AgentServer {
  serve(stream: Duplex): { close(): void };
}

export function createAgentServer(
  launcher: SandboxLauncher,
  options: { agentVersion?: string } = {},
): AgentServer {
  const background = new BackgroundProcesses(launcher);
  return {
    serve(stream) {
      const mux = new Mux(
        stream,
        {
          onOpen: (channel, request) => {
            handle(launcher, background, channel, request).catch((error: unknown) => fail(channel, error));
          },
        },
        "server",
      );
      mux.sendHello({
        protocolVersion: AGENT_PROTOCOL_VERSION,
        agentVersion: options.agentVersion ?? AGENT_VERSION,
        capabilities: CAPABILITIES,
      });
      return { close: () => mux.close() };
    },
  };
}

function fail(channel: Channel, error: unknown): void {
  const known = isPolydevError(error)
    ? error
    : new PolydevError("internal", error instanceof Error ? error.message : String(error));
  channel.sendControl({ type: "error", code: known.code, message: known.message });
  channel.close();
}

function reply(channel: Channel, value: unknown): void {
  channel.sendControl({ type: "result", value });
  channel.close();
}

const str = (value: unknown, name: string): string => {
  if (typeof value !== "string") throw new PolydevError("invalid_request", `${name} must be a string`);
  return value;
};
const strings = (value: unknown, name: string): string[] => {
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === "string")) {
    throw new PolydevError("invalid_request", `${name} must be a non-empty list of strings`);
  }
  return value as string[];
};
const envOf = (value: unknown): Record<string, string> => {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null)
    throw new PolydevError("invalid_request", "env must be an object");
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
};

function command(launcher: SandboxLauncher, argv: string[], cwd: unknown, env: unknown): LaunchCommand {
  const dir = typeof cwd === "string" && cwd.length > 0 ? posix.resolve(launcher.home, cwd) : launcher.home;
  return launcher.command({ argv, cwd: dir, env: { ...launcher.baseEnv, ...envOf(env) } });
}

function spawnCommand(cmd: LaunchCommand, stdin: "pipe" | "ignore"): ChildProcess {
  return spawn(cmd.file, cmd.args, {
    env: cmd.env,
    ...(cmd.hostCwd === undefined ? {} : { cwd: cmd.hostCwd }),
    detached: true,
    stdio: [stdin, "pipe", "pipe"],
  });
}

async function handle(
  launcher: SandboxLauncher,
  background: BackgroundProcesses,
  channel: Channel,
  request: Json,
): Promise<void> {
  switch (request.op) {
    case "ping":
      return reply(channel, { at: Date.now() });
    case "exec":
      return exec(launcher, channel, request);
    case "pty":
      return openPty(launcher, channel, request);
    case "files.stat":
    case "files.list": {
      const path = validateRelativePath(str(request.path, "path"));
      const operation: FileOperation = request.op === "files.stat" ? "stat" : "list";
      const output = await runScript(launcher, operation, path, []);
      if (operation === "list") return reply(channel, parseEntries(output, path));
      const [entry] = parseEntries(output, ".");
      return reply(channel, entry ? { ...entry, path } : undefined);
    }
    case "files.mkdir": {
      const path = validateRelativePath(str(request.path, "path"));
      await runScript(launcher, "mkdir", path, [request.parents === false ? "single" : "parents"]);
      return reply(channel, {});
    }
    case "files.remove": {
      const path = validateRelativePath(str(request.path, "path"));
      await runScript(launcher, "remove", path, [request.recursive === true ? "recursive" : "single"]);
      return reply(channel, {});
    }
    case "files.read":
      return readFile(launcher, channel, validateRelativePath(str(request.path, "path")));
    case "files.write":
      return writeFile(launcher, channel, validateRelativePath(str(request.path, "path")), request.mode);
    case "files.watch":
      return watch(launcher, channel, validateRelativePath(str(request.path, "path")), request.intervalMs);
    case "bg.start": {
      const argv = strings(request.argv, "argv");
      return reply(channel, await background.start(argv, command(launcher, argv, request.cwd, request.env)));
    }
    case "bg.list":
      return reply(channel, await background.list());
    case "bg.get":
      return reply(channel, await background.get(str(request.id, "id")));
    case "bg.signal":
      await background.signal(str(request.id, "id"), str(request.signal, "signal") as NodeJS.Signals);
      return reply(channel, {});
    case "bg.attach": {
      const controller = new AbortController();
      channel.once("close", () => controller.abort());
      const output = await background.attach(str(request.id, "id"), {
        fromOffset: typeof request.fromOffset === "number" ? request.fromOffset : 0,
        follow: request.follow !== false,
        signal: controller.signal,
      });
      channel.sendControl({ type: "started" });
      await pipeOut(output, channel.writable(Stream.stdout));
      return channel.close();
    }
    default:
      throw new PolydevError("invalid_request", `unknown agent operation ${String(request.op)}`);
  }
}

async function pipeOut(source: Readable, target: Writable): Promise<void> {
  source.pipe(target);
  await finished(target).catch(() => undefined);
}

function exec(launcher: SandboxLauncher, channel: Channel, request: Json): void {
  const argv = strings(request.argv, "argv");
  const cmd = command(launcher, argv, request.cwd, request.env);
  const started = Date.now();
  const child = spawnCommand(cmd, "pipe");
  let timedOut = false;
  let exited = false;
  const timeoutMs =
    typeof request.timeoutMs === "number" && request.timeoutMs > 0 ? request.timeoutMs : undefined;
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          if (child.pid !== undefined) void killTree(child.pid);
        }, timeoutMs);

  const stdout = channel.writable(Stream.stdout);
  const stderr = channel.writable(Stream.stderr);
  child.stdin?.on("error", () => undefined);
  const stdin = channel.readable(Stream.stdin);
  if (child.stdin) stdin.pipe(child.stdin);
  child.stdout?.pipe(stdout);
  child.stderr?.pipe(stderr);
  channel.sendControl({ type: "started" });

  channel.on("control", (message: Json) => {
    if (message.type !== "signal" || child.pid === undefined || exited) return;
    const signal = str(message.signal, "signal") as NodeJS.Signals;
    // SIGKILL means "stop it all": the command and every process it started.
    if (signal === "SIGKILL") {
      void killTree(child.pid);
      return;
    }
    void descendant(child.pid, cmd.wrapperDepth).then((pid) => {
      if (pid !== undefined) signalPid(pid, signal);
    });
  });
  // The client went away: nothing will read the output, so the command goes too.
  channel.once("close", () => {
    if (!exited && child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
  });

  let spawnError: Error | undefined;
  child.once("error", (error) => {
    spawnError = error;
    stderr.end(`polydev: cannot run ${argv[0]}: ${error.message}\n`);
    stdout.end();
  });
  child.once("close", async (code, signal) => {
    exited = true;
    if (timer) clearTimeout(timer);
    await Promise.all([finished(stdout).catch(() => undefined), finished(stderr).catch(() => undefined)]);
    // nsenter reports a command killed by a signal as 128 + n; keep both views.
    const exitCode = spawnError ? 127 : code;
    channel.sendControl({
      type: "exit",
      exitCode,
      signal: timedOut ? "SIGKILL" : signal,
      timedOut,
      durationMs: Date.now() - started,
    });
    channel.close();
  });
}

function openPty(launcher: SandboxLauncher, channel: Channel, request: Json): void {
  const argv = Array.isArray(request.argv) ? strings(request.argv, "argv") : ["/bin/bash", "-l"];
  const cmd = command(launcher, argv, request.cwd, { TERM: "xterm-256color", ...envOf(request.env) });
  const cols = typeof request.cols === "number" ? request.cols : 80;
  const rows = typeof request.rows === "number" ? request.rows : 24;
  const started = Date.now();
  const term = pty.spawn(cmd.file, cmd.args, {
    name: "xterm-256color",
    cols,
    rows,
    cwd: cmd.hostCwd ?? "/",
    env: cmd.env,
  });
  const output = channel.writable(Stream.stdout);
  term.onData((data) => {
    if (!output.write(data)) {
      term.pause();
      output.once("drain", () => term.resume());
    }
  });
  channel.readable(Stream.stdin).on("data", (chunk: Buffer) => term.write(chunk.toString("utf8")));
  channel.on("control", (message: Json) => {
    if (message.type === "resize" && typeof message.cols === "number" && typeof message.rows === "number") {
      term.resize(Math.max(1, Math.floor(message.cols)), Math.max(1, Math.floor(message.rows)));
    } else if (message.type === "signal") {
      const signal = str(message.signal, "signal") as NodeJS.Signals;
      void descendant(term.pid, cmd.wrapperDepth).then((pid) => {
        if (pid !== undefined) signalPid(pid, signal);
      });
    }
  });
  let exited = false;
  channel.once("close", () => {
    if (!exited) signalGroup(term.pid, "SIGHUP");
  });
  channel.sendControl({ type: "started" });
  term.onExit(({ exitCode, signal }) => {
    exited = true;
    output.end();
    void finished(output)
      .catch(() => undefined)
      .then(() => {
        channel.sendControl({
          type: "exit",
          exitCode,
          signal: signal ? `signal ${signal}` : null,
          timedOut: false,
          durationMs: Date.now() - started,
        });
        channel.close();
      });
  });
}

/** Runs a file script and returns its stdout, or throws the error its exit code names. */
async function runScript(
  launcher: SandboxLauncher,
  operation: FileOperation,
  path: string,
  args: string[],
): Promise<Buffer> {
  const cmd = command(
    launcher,
    ["/bin/sh", "-c", scripts[operation], "sh", launcher.home, path, ...args],
    undefined,
    undefined,
  );
  const child = spawnCommand(cmd, "ignore");
  const out: Buffer[] = [];
  let size = 0;
  let err = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_SMALL_OUTPUT_BYTES) out.push(chunk);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    if (err.length < 4096) err += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => {
    child.once("error", () => resolve(null));
    child.once("close", (c) => resolve(c));
  });
  if (code !== 0) throw fileError(code, path, err);
  return Buffer.concat(out);
}

/**
 * Streams a file out. The first byte (or the exit) decides between an error and success, so a
 * missing file answers with an error instead of an empty stream.
 */
async function readFile(launcher: SandboxLauncher, channel: Channel, path: string): Promise<void> {
  const cmd = command(
    launcher,
    ["/bin/sh", "-c", scripts.read, "sh", launcher.home, path],
    undefined,
    undefined,
  );
  const child = spawnCommand(cmd, "ignore");
  channel.once("close", () => {
    if (child.exitCode === null && child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
  });
  let err = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (err.length < 4096) err += chunk.toString();
  });
  const closed = new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
  const stdout = child.stdout;
  if (!stdout) throw new PolydevError("internal", "no stdout");
  // 'readable' also fires at end of stream; only buffered bytes mean the file is being sent.
  const first = await Promise.race([
    new Promise<"data">((resolve) => {
      const check = (): void => {
        if (stdout.readableLength > 0) {
          stdout.off("readable", check);
          resolve("data");
        }
      };
      stdout.on("readable", check);
    }),
    closed.then(() => "closed" as const),
  ]);
  if (first === "closed") {
    const code = await closed;
    if (code !== 0) throw fileError(code, path, err);
  }
  channel.sendControl({ type: "started" });
  const out = channel.writable(Stream.stdout);
  await pipeOut(stdout, out);
  const code = await closed;
  if (code !== 0) {
    // Failed midway (e.g. an I/O error): the client sees the stream end with an error.
    channel.sendControl({
      type: "error",
      code: "command_failed",
      message: `reading "${path}" failed: ${err.trim()}`,
    });
  }
  channel.close();
}

async function writeFile(
  launcher: SandboxLauncher,
  channel: Channel,
  path: string,
  mode: unknown,
): Promise<void> {
  const modeArg = typeof mode === "number" ? mode.toString(8) : "-";
  const cmd = command(
    launcher,
    ["/bin/sh", "-c", scripts.write, "sh", launcher.home, path, modeArg],
    undefined,
    undefined,
  );
  const child = spawnCommand(cmd, "pipe");
  child.stdin?.on("error", () => undefined);
  const input = channel.readable(Stream.stdin);
  if (child.stdin) input.pipe(child.stdin);
  channel.once("close", () => {
    if (child.exitCode === null && child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    if (err.length < 4096) err += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
  // Whatever the client still sends after a failure is read and dropped, so it never blocks.
  input.resume();
  if (code !== 0) throw fileError(code, path, err);
  reply(channel, { sizeBytes: Number(out.trim()) });
}

async function watch(
  launcher: SandboxLauncher,
  channel: Channel,
  path: string,
  intervalMs: unknown,
): Promise<void> {
  const every = typeof intervalMs === "number" && intervalMs >= 100 ? intervalMs : 500;
  let previous = parseSnapshot(await runScript(launcher, "snapshot", path, []));
  channel.sendControl({ type: "started" });
  while (!channel.closed) {
    await sleep(every);
    if (channel.closed) break;
    const current = parseSnapshot(
      await runScript(launcher, "snapshot", path, []).catch(() => Buffer.alloc(0)),
    );
    for (const [name, signature] of current) {
      const before = previous.get(name);
      if (before === undefined)
        channel.sendControl({ type: "event", kind: "rename", path: posix.join(path, name) });
      else if (before !== signature)
        channel.sendControl({ type: "event", kind: "change", path: posix.join(path, name) });
    }
    for (const name of previous.keys()) {
      if (!current.has(name))
        channel.sendControl({ type: "event", kind: "rename", path: posix.join(path, name) });
    }
    previous = current;
  }
}
