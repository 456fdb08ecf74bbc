import type { Duplex, Readable, Writable } from "node:stream";
import type { AttachOptions, BackgroundProcessInfo, EgressDestination } from "./agent.js";

/**
 * How the agent starts processes inside a sandbox. A driver builds one per sandbox. The agent
 * never spawns anything itself: an agent at the host edge must not run a host process with
 * anything a request controls (argv, environment, working directory), so the launcher hands
 * the request to something that already lives inside the sandbox (the namespace driver's exec
 * server). An agent that runs inside the guest uses an identity launcher instead, where "the
 * host" is the guest itself.
 */
export interface LaunchRequest {
  argv: string[];
  /** Absolute path inside the sandbox; empty: the home of the user who runs it. */
  cwd: string;
  /** The complete environment of the process (nothing is inherited from the host). */
  env: Record<string, string>;
  /** Start it on a new terminal of this size (its stdout then carries the terminal's output). */
  tty?: { cols: number; rows: number } | undefined;
  /**
   * Who runs it, in a sandbox with users of its own (an image): "root", "user" or another name
   * or uid of the image. Default: the sandbox's default user.
   */
  user?: string | undefined;
}

/** Background processes, kept by the sandbox so that they outlive the agent's connection. */
export interface BackgroundLauncher {
  start(request: LaunchRequest): Promise<BackgroundProcessInfo>;
  list(): Promise<BackgroundProcessInfo[]>;
  /** `not_found` for an unknown id. */
  get(id: string): Promise<BackgroundProcessInfo>;
  /** The combined output from `fromOffset`; with `follow`, until the process has exited. */
  attach(id: string, options?: AttachOptions): Promise<Readable>;
  /** To the command's process group; `process_not_running` once it has exited. */
  signal(id: string, signal: NodeJS.Signals): Promise<void>;
}

/** A listener started by `SandboxLauncher.listen`. */
export interface PortListener {
  close(): void;
  /** Settles when the listener stopped (closed, or the sandbox went away); never rejects. */
  readonly closed: Promise<void>;
}

export interface SandboxLauncher {
  /** Absolute path of the sandbox user's home, as seen inside the sandbox. */
  readonly home: string;
  /** Where commands start when they name no cwd (an image's WORKDIR); default the home. */
  readonly workdir?: string | undefined;
  /** Base environment of every process (PATH, HOME, USER, LANG, TERM and the spec's env). */
  readonly baseEnv: Readonly<Record<string, string>>;
  /**
   * The argv prefix of a file helper inside the sandbox that needs nothing from the image (the
   * namespace driver's init binary, `--file`; protocol in its native/file-ops.c). The agent's
   * file operations run it when present and fall back to POSIX sh scripts (sh, realpath, find,
   * GNU coreutils in the image) when absent.
   */
  readonly fileHelper?: readonly string[] | undefined;
  /** Starts a process inside the sandbox, on pipes or (with `tty`) on a terminal of its own. */
  start(request: LaunchRequest): LaunchedProcess;
  readonly background: BackgroundLauncher;
  /**
   * A TCP connection to `port` on the sandbox's loopback (SSH's "direct-tcpip"); rejects with
   * `port_unreachable` when nothing listens there.
   */
  connect(port: number, signal?: AbortSignal): Promise<Duplex>;
  /**
   * Listens on `port` on the sandbox's loopback and hands every connection made to it from
   * inside the sandbox to `onConnection` (SSH's remote forwarding).
   */
  listen(port: number, onConnection: (socket: Duplex) => void, signal?: AbortSignal): Promise<PortListener>;
  /**
   * Present where the sandbox's network can be intercepted (network "allowlist"): hands every
   * outbound TCP connection and DNS query of the sandbox to `onConnection` with its original
   * destination. See `AgentConnection.interceptEgress`.
   */
  interceptEgress?(
    onConnection: (socket: Duplex, destination: EgressDestination) => void,
    signal?: AbortSignal,
  ): Promise<PortListener>;
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
  /** A terminal's new size; ignored for a process on pipes. */
  resize(cols: number, rows: number): void;
  /**
   * Lets go of the process: a command on pipes is killed with everything it started; a
   * terminal is hung up (SIGHUP to its session) and killed if still there a moment later.
   */
  abandon(): void;
  /** Settles once the process has exited and its output has ended; never rejects. */
  readonly exited: Promise<LaunchedExit>;
}

export interface LaunchedExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started or the launcher lost it (exec says it on stderr). */
  failure?: string;
}
