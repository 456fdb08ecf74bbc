import type { LaunchCommand, LaunchRequest, SandboxLauncher } from "@polydev/core";

export interface IdentityLauncherOptions {
  /** The home that relative paths and the default working directory resolve against. */
  home: string;
  /** Where background processes keep their output and exit files. */
  stateDir: string;
  /** Every process's environment; default: PATH=/usr/local/bin:/usr/bin:/bin, HOME, LANG=C.UTF-8. */
  baseEnv?: Record<string, string>;
}

/**
 * Runs commands directly on this machine, argv as given: for an agent that already lives inside
 * its sandbox (a VM guest), and for the agent's own tests.
 */
export function identityLauncher(options: IdentityLauncherOptions): SandboxLauncher {
  const baseEnv = Object.freeze({
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: options.home,
    LANG: "C.UTF-8",
    ...options.baseEnv,
  });
  return Object.freeze({
    home: options.home,
    stateDir: options.stateDir,
    baseEnv,
    command(request: LaunchRequest): LaunchCommand {
      const [file, ...args] = request.argv;
      if (file === undefined) throw new Error("identityLauncher: argv is empty");
      return { file, args, env: request.env, hostCwd: request.cwd, wrapperDepth: 0 };
    },
  });
}
