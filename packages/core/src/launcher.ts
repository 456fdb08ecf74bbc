/**
 * How an agent that lives outside the sandbox (at the host edge) starts a process inside it.
 * A driver builds one per sandbox; the agent spawns `file args` on the host with `env` and the
 * process ends up inside the sandbox, as the sandbox user, inside its resource limits.
 * An agent that runs inside the guest uses an identity launcher instead.
 */
export interface LaunchRequest {
  argv: string[];
  /** Absolute path inside the sandbox. */
  cwd: string;
  /** The complete environment of the process (nothing is inherited from the host). */
  env: Record<string, string>;
}

export interface LaunchCommand {
  file: string;
  args: string[];
  env: Record<string, string>;
  /** Host working directory for the spawn, when the launcher does not set it inside. */
  hostCwd?: string;
  /**
   * How many wrapper processes stand between the spawned host process and the command
   * (e.g. 1 for `nsenter`, which forks the command): signals meant for the command go to the
   * process this many generations down.
   */
  wrapperDepth: number;
}

export interface SandboxLauncher {
  /** Absolute path of the sandbox user's home, as seen inside the sandbox. */
  readonly home: string;
  /** Base environment of every process (PATH, HOME, USER, LANG, TERM and the spec's env). */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** A host directory only the agent uses (background process output and exit files). */
  readonly stateDir: string;
  command(request: LaunchRequest): LaunchCommand;
}
