/** Turns an operation's argv, cwd and env into a launch request for the sandbox's launcher. */
import { posix } from "node:path";
import type { LaunchRequest, SandboxLauncher } from "@polydev/core";

export interface LaunchOptions {
  argv: string[];
  /** Relative to the home, or absolute inside the sandbox. Default: the home. */
  cwd?: string | undefined;
  /** On top of the launcher's base environment; the host's own environment is never passed. */
  env?: Record<string, string> | undefined;
  tty?: { cols: number; rows: number } | undefined;
}

export function launchRequest(launcher: SandboxLauncher, options: LaunchOptions): LaunchRequest {
  const cwd =
    options.cwd === undefined || options.cwd === ""
      ? launcher.home
      : posix.resolve(launcher.home, options.cwd);
  return {
    argv: options.argv,
    cwd,
    env: { ...launcher.baseEnv, ...options.env },
    ...(options.tty === undefined ? {} : { tty: options.tty }),
  };
}
