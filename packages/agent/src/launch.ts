/** Turns an operation's argv, cwd and env into a process through the sandbox's launcher. */
import type { ChildProcess, StdioOptions } from "node:child_process";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { posix } from "node:path";
import type {
  LaunchCommand,
  LaunchedExit,
  LaunchedProcess,
  LaunchRequest,
  SandboxLauncher,
} from "@polydev/core";
import { descendant, killTree, signalPid } from "./process-tree.js";

export interface LaunchOptions {
  argv: string[];
  /** Relative to the home, or absolute inside the sandbox. Default: the home. */
  cwd?: string | undefined;
  /** On top of the launcher's base environment; the host's own environment is never passed. */
  env?: Record<string, string> | undefined;
}

export function launchRequest(launcher: SandboxLauncher, options: LaunchOptions): LaunchRequest {
  const cwd =
    options.cwd === undefined || options.cwd === ""
      ? launcher.home
      : posix.resolve(launcher.home, options.cwd);
  return { argv: options.argv, cwd, env: { ...launcher.baseEnv, ...options.env } };
}

export function launchCommand(launcher: SandboxLauncher, options: LaunchOptions): LaunchCommand {
  return launcher.command(launchRequest(launcher, options));
}

/**
 * Spawns a launch command in a process group of its own (`detached`), so a timeout or an
 * abandoned channel can kill everything it started with one signal.
 */
export function spawnDetached(command: LaunchCommand, stdio: StdioOptions): ChildProcess {
  return spawn(command.file, command.args, {
    env: command.env,
    ...(command.hostCwd === undefined ? {} : { cwd: command.hostCwd }),
    detached: true,
    stdio,
  });
}

/**
 * Starts a process with piped stdio: through the launcher's own fast path when it has one (no
 * host process at all), otherwise by spawning its command on the host.
 */
export function startProcess(launcher: SandboxLauncher, options: LaunchOptions): LaunchedProcess {
  const request = launchRequest(launcher, options);
  if (launcher.start) return launcher.start(request);
  return spawnedProcess(launcher.command(request), request.argv[0]);
}

/** A spawned launch command seen as a LaunchedProcess: signals skip the launcher's wrappers. */
function spawnedProcess(command: LaunchCommand, program: string | undefined): LaunchedProcess {
  const child = spawnDetached(command, ["pipe", "pipe", "pipe"]);
  const { stdin, stdout, stderr } = child;
  if (!stdin || !stdout || !stderr) throw new Error("spawn gave no stdio pipes");
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
          failure: spawnFailure(program, command.hostCwd, spawnError),
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
    signal(signal: NodeJS.Signals): void {
      const pid = child.pid;
      if (done || pid === undefined) return;
      if (signal === "SIGKILL") {
        kill();
        return;
      }
      // To the command, not to the launcher's wrappers (nsenter dies on SIGTERM instead of
      // passing it on).
      if (command.wrapperDepth === 0) signalPid(pid, signal);
      else
        void descendant(pid, command.wrapperDepth).then((target) => {
          if (target !== undefined && !done) signalPid(target, signal);
        });
    },
  };
}

function spawnFailure(
  program: string | undefined,
  hostCwd: string | undefined,
  error: NodeJS.ErrnoException,
): string {
  if (error.code === "ENOENT" && hostCwd !== undefined && !existsSync(hostCwd)) {
    return `cannot run ${program}: the working directory ${hostCwd} does not exist`;
  }
  if (error.code === "ENOENT") return `${program}: command not found`;
  if (error.code === "EACCES") return `${program}: permission denied`;
  return `cannot run ${program}: ${error.message}`;
}
