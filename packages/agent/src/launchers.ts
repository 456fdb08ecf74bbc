import type { LaunchCommand, LaunchRequest, SandboxLauncher } from "@polydev/core";

/**
 * Runs commands directly on this machine: for an agent that already lives inside the sandbox
 * (a VM guest), and for tests of the agent itself.
 */
export function identityLauncher(options: {
  home: string;
  stateDir: string;
  baseEnv?: Record<string, string>;
}): SandboxLauncher {
  const baseEnv = Object.freeze({
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: options.home,
    LANG: "C.UTF-8",
    ...options.baseEnv,
  });
  return {
    home: options.home,
    stateDir: options.stateDir,
    baseEnv,
    command(request: LaunchRequest): LaunchCommand {
      const [file, ...args] = request.argv;
      if (file === undefined) throw new Error("empty argv");
      return { file, args, env: request.env, hostCwd: request.cwd, wrapperDepth: 0 };
    },
  };
}
