import type { Readable, Writable } from "node:stream";

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
  /**
   * Optional fast path: starts the process without spawning anything on the host (e.g. by asking
   * an exec server that already lives inside the sandbox). Exec uses it when present; PTYs and
   * background processes keep using `command`.
   */
  start?(request: LaunchRequest): LaunchedProcess;
}

/** A process started through `SandboxLauncher.start`. */
export interface LaunchedProcess {
  /** End it to close the process's stdin; writes respect back-pressure. */
  readonly stdin: Writable;
  /** End when the process (and whatever inherited them) closed them; respect back-pressure. */
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Delivers a signal to the command itself. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILLs the command, its process group and everything it started. */
  kill(): void;
  /** Settles once the process has exited and its output has ended; never rejects. */
  readonly exited: Promise<LaunchedExit>;
}

export interface LaunchedExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started or the launcher lost it (exec says it on stderr). */
  failure?: string;
}
