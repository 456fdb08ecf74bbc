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
  /** Who runs it (see LaunchRequest.user); default the sandbox's default user. */
  user?: string | undefined;
}

export function launchRequest(launcher: SandboxLauncher, options: LaunchOptions): LaunchRequest {
  // Another user without a cwd starts in their own home, which the sandbox knows ("").
  const cwd =
    options.cwd === undefined || options.cwd === ""
      ? (launcher.workdir ?? (options.user === undefined ? launcher.home : ""))
      : posix.resolve(launcher.home, options.cwd);
  return {
    argv: options.argv,
    cwd,
    env: { ...launcher.baseEnv, ...options.env },
    ...(options.tty === undefined ? {} : { tty: options.tty }),
    ...(options.user === undefined ? {} : { user: options.user }),
  };
}
