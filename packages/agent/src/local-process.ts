/**
 * Processes an identity launcher starts on its own machine (the agent lives inside the sandbox:
 * a VM guest, a pod, or the agent's own tests), on pipes or on a pseudo-terminal.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { PassThrough, Writable } from "node:stream";
import type { LaunchedExit, LaunchedProcess, LaunchRequest } from "@polydev/core";
import type * as NodePty from "node-pty";
import type { IPty } from "node-pty";
import { killTree, signalGroup, signalName, signalPid } from "./process-tree.js";

/**
 * node-pty, loaded at the first terminal rather than at start: its native addon and modules are
 * about a fifth of the agent's start inside gVisor (dozens of ms under ptrace), and most
 * sandboxes' first request is an exec, often their only kind.
 */
let nodePty: typeof NodePty | undefined;
function loadNodePty(): typeof NodePty {
  nodePty ??= createRequire(import.meta.url)("node-pty") as typeof NodePty;
  return nodePty;
}

/** After a terminal's hangup, its processes get this long before SIGKILL. */
const HANGUP_GRACE_MS = 2000;

/** Spawned in a process group of its own, so one signal reaches everything it started. */
export function startLocalProcess(request: LaunchRequest): LaunchedProcess {
  if (request.tty !== undefined) return startLocalTerminal(request, request.tty);
  const [file, ...args] = request.argv;
  if (file === undefined) throw new Error("argv is empty");
  const child = spawn(file, args, { env: request.env, cwd: request.cwd, detached: true, stdio: "pipe" });
  const { stdin, stdout, stderr } = child;
  let done = false;
  let spawnError: NodeJS.ErrnoException | undefined;
  child.once("error", (error: NodeJS.ErrnoException) => {
    spawnError = error;
  });
  const exited = new Promise<LaunchedExit>((resolve) => {
    child.once("close", (code, signal) => {
      done = true;
      if (spawnError === undefined) resolve({ exitCode: code, signal });
      else
        resolve({
          exitCode: spawnError.code === "EACCES" ? 126 : 127,
          signal: null,
          failure: spawnFailure(file, request.cwd, spawnError),
        });
    });
  });
  const kill = (): void => {
    if (!done && child.pid !== undefined) void killTree(child.pid);
  };
  return {
    stdin,
    stdout,
    stderr,
    exited,
    kill,
    abandon: kill,
    resize: () => undefined,
    signal(signal: NodeJS.Signals): void {
      if (done || child.pid === undefined) return;
      if (signal === "SIGKILL") kill();
      else signalPid(child.pid, signal);
    },
  };
}

function startLocalTerminal(request: LaunchRequest, size: { cols: number; rows: number }): LaunchedProcess {
  const [file, ...args] = request.argv;
  if (file === undefined) throw new Error("argv is empty");
  const term: IPty = loadNodePty().spawn(file, args, {
    name: request.env.TERM ?? "xterm-256color",
    cols: size.cols,
    rows: size.rows,
    cwd: request.cwd,
    env: request.env,
    // Bytes, not strings: a UTF-8 character split across reads must not be mangled.
    encoding: null,
  });
  let done = false;
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stderr.end();
  term.onData((data: string | Buffer) => {
    if (done) return;
    if (!stdout.write(data)) {
      term.pause();
      stdout.once("drain", () => term.resume());
    }
  });
  const stdin = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (!done) term.write(chunk);
      callback();
    },
  });
  const exited = new Promise<LaunchedExit>((resolve) => {
    term.onExit(({ exitCode, signal }) => {
      done = true;
      stdout.end();
      const signalled = signalName(signal);
      resolve({ exitCode: signalled === null ? exitCode : null, signal: signalled as NodeJS.Signals | null });
    });
  });
  const kill = (): void => {
    if (!done) signalGroup(term.pid, "SIGKILL");
  };
  return {
    stdin,
    stdout,
    stderr,
    exited,
    kill,
    resize(cols, rows) {
      if (!done) term.resize(cols, rows);
    },
    // Closing a terminal hangs up its session, as a terminal emulator does; whatever ignores
    // the hangup is killed shortly after.
    abandon() {
      if (done) return;
      signalGroup(term.pid, "SIGHUP");
      setTimeout(kill, HANGUP_GRACE_MS).unref();
    },
    signal(signal: NodeJS.Signals) {
      if (!done) signalPid(term.pid, signal);
    },
  };
}

function spawnFailure(program: string, cwd: string, error: NodeJS.ErrnoException): string {
  if (error.code === "ENOENT" && !existsSync(cwd)) {
    return `cannot run ${program}: the working directory ${cwd} does not exist`;
  }
  if (error.code === "ENOENT") return `${program}: command not found`;
  if (error.code === "EACCES") return `${program}: permission denied`;
  return `cannot run ${program}: ${error.message}`;
}
