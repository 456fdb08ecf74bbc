/** Turns an operation's argv, cwd and env into a host process through the sandbox's launcher. */
import type { ChildProcess, StdioOptions } from "node:child_process";
import { spawn } from "node:child_process";
import { posix } from "node:path";
import type { LaunchCommand, SandboxLauncher } from "@polydev/core";

export interface LaunchOptions {
  argv: string[];
  /** Relative to the home, or absolute inside the sandbox. Default: the home. */
  cwd?: string | undefined;
  /** On top of the launcher's base environment; the host's own environment is never passed. */
  env?: Record<string, string> | undefined;
}

export function launchCommand(launcher: SandboxLauncher, options: LaunchOptions): LaunchCommand {
  const cwd =
    options.cwd === undefined || options.cwd === ""
      ? launcher.home
      : posix.resolve(launcher.home, options.cwd);
  return launcher.command({ argv: options.argv, cwd, env: { ...launcher.baseEnv, ...options.env } });
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
