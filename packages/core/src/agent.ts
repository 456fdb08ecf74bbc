/**
 * What the server can ask of a sandbox's agent. The agent package implements this over its wire
 * protocol; every driver hands one of these out from `connect`, so the server never knows where
 * the agent lives (host edge, guest VM, pod).
 */
import type { Duplex, Readable, Writable } from "node:stream";

export const AGENT_PROTOCOL_VERSION = 1;

export interface AgentHello {
  protocolVersion: number;
  agentVersion: string;
  /** e.g. "exec", "pty", "files", "files.watch", "background" */
  capabilities: string[];
  /** The sandbox's default user's home (absolute inside the sandbox) and name. */
  home?: string | undefined;
  user?: string | undefined;
}

export interface ExecRequest {
  /** Program and arguments; a shell line is `["/bin/sh", "-c", line]`. */
  argv: string[];
  /** Working directory: relative to the home, or absolute inside the sandbox. Default: home. */
  cwd?: string;
  env?: Record<string, string>;
  /** Kill the process (SIGKILL) after this long; reported as `timedOut`. */
  timeoutMs?: number;
  /** Who runs it (see LaunchRequest.user); default the sandbox's default user. */
  user?: string;
}

export interface ExitInfo {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
}

export interface ExecProcess {
  /** Ends when the process closes its stdout; respects back-pressure from the reader. */
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** End it to close the process's stdin. */
  readonly stdin: Writable;
  readonly exited: Promise<ExitInfo>;
  kill(signal?: NodeJS.Signals): void;
}

export interface PtyRequest {
  /** Default: the sandbox user's login shell. */
  argv?: string[];
  cols: number;
  rows: number;
  cwd?: string;
  env?: Record<string, string>;
  /** Who runs it (see LaunchRequest.user). */
  user?: string;
}

export interface PtyProcess {
  readonly output: Readable;
  write(data: string | Uint8Array): void;
  resize(cols: number, rows: number): void;
  kill(signal?: NodeJS.Signals): void;
  readonly exited: Promise<ExitInfo>;
}

export interface BackgroundProcessInfo {
  id: string;
  argv: string[];
  startedAt: number;
  state: "running" | "exited";
  exitCode: number | null;
  signal: string | null;
  /** Bytes of combined stdout and stderr captured so far. */
  outputBytes: number;
}

export interface BackgroundRequest {
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Who runs it (see LaunchRequest.user). */
  user?: string;
}

export interface AttachOptions {
  /** Start at this byte of the captured output (default 0). */
  fromOffset?: number;
  /** Keep the stream open and follow new output until the process exits (default true). */
  follow?: boolean;
  signal?: AbortSignal;
}

export type FileType = "file" | "directory" | "symlink" | "other";

export interface FileEntry {
  name: string;
  /** Relative to the home. */
  path: string;
  type: FileType;
  sizeBytes: number;
  modifiedAt: number;
  mode: number;
}

export interface FileWatchEvent {
  kind: "change" | "rename";
  path: string;
}

/** Paths are relative to the sandbox home; anything resolving outside it is `path_outside_home`. */
export interface AgentFiles {
  stat(path: string, signal?: AbortSignal): Promise<FileEntry>;
  list(path: string, signal?: AbortSignal): Promise<FileEntry[]>;
  read(path: string, signal?: AbortSignal): Promise<Readable>;
  write(
    path: string,
    data: Readable,
    options?: { mode?: number; signal?: AbortSignal },
  ): Promise<{ sizeBytes: number }>;
  mkdir(path: string, options?: { parents?: boolean; signal?: AbortSignal }): Promise<void>;
  remove(path: string, options?: { recursive?: boolean; signal?: AbortSignal }): Promise<void>;
  /**
   * Moves `from` to `to` (both names themselves: a symlink is moved, not its target). A file or
   * an empty directory at `to` is replaced; `conflict` for a directory that is not empty.
   */
  rename(from: string, to: string, options?: { signal?: AbortSignal }): Promise<void>;
  watch(path: string, signal: AbortSignal): AsyncIterable<FileWatchEvent>;
}

/** Connections forwarded out of a sandbox by `AgentConnection.forwardOut`. */
export interface ForwardedPort {
  /** Stops listening; connections already handed out stay open. */
  close(): void;
  /** Settles when the listener stopped (closed, or the sandbox or connection went away). */
  readonly closed: Promise<void>;
}

/** Where an intercepted connection of an allow-list sandbox was headed. */
export interface EgressDestination {
  /**
   * "tcp": a TCP connection; its bytes follow as they were sent.
   * "dns": one DNS query (UDP, or TCP to port 53 split into messages): the socket carries DNS
   * messages framed as on TCP (RFC 1035 §4.2.2: a 2-byte big-endian length, then the message);
   * the server writes the answer the same way and ends the socket.
   */
  kind: "tcp" | "dns";
  /** The IPv4 or IPv6 address the sandbox process connected or sent to, as text. */
  address: string;
  port: number;
}

export interface AgentConnection {
  readonly hello: AgentHello;
  /**
   * Settles once the connection has ended, for whatever reason (closed here, the agent or its
   * sandbox gone); never rejects. A holder of a cached connection drops it then.
   */
  readonly closed: Promise<void>;
  /** Round trip in milliseconds. */
  ping(signal?: AbortSignal): Promise<number>;
  exec(request: ExecRequest, signal?: AbortSignal): Promise<ExecProcess>;
  openPty(request: PtyRequest, signal?: AbortSignal): Promise<PtyProcess>;
  startBackground(request: BackgroundRequest, signal?: AbortSignal): Promise<BackgroundProcessInfo>;
  listBackground(signal?: AbortSignal): Promise<BackgroundProcessInfo[]>;
  getBackground(id: string, signal?: AbortSignal): Promise<BackgroundProcessInfo>;
  attachBackground(id: string, options?: AttachOptions): Promise<Readable>;
  signalBackground(id: string, signal: NodeJS.Signals): Promise<void>;
  readonly files: AgentFiles;
  /**
   * A TCP connection to `port` on the sandbox's loopback, as a byte stream (SSH's
   * "direct-tcpip"). Works whatever the sandbox's network mode. `port_unreachable` when
   * nothing listens there.
   */
  forwardIn(port: number, signal?: AbortSignal): Promise<Duplex>;
  /**
   * Listens on `port` on the sandbox's loopback; every connection a sandbox process makes to it
   * arrives at `onConnection` as a flow-controlled byte stream (SSH's remote forwarding). This is
   * how the provider gateway reaches sandboxes with no network.
   */
  forwardOut(
    port: number,
    onConnection: (socket: Duplex) => void,
    signal?: AbortSignal,
  ): Promise<ForwardedPort>;
  /**
   * For a sandbox created with `network: "allowlist"`: starts intercepting its outbound TCP
   * connections and DNS queries; each arrives at `onConnection` with where it was headed, and
   * nothing leaves the sandbox otherwise. `feature_unavailable` where the driver cannot.
   */
  interceptEgress(
    onConnection: (socket: Duplex, destination: EgressDestination) => void,
    signal?: AbortSignal,
  ): Promise<ForwardedPort>;
  close(): Promise<void>;
}
