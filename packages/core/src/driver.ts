/**
 * The isolation port. Every backend (bubblewrap namespaces, gVisor, containers, microVMs,
 * Kubernetes) implements this and passes the shared contract suite in `@polydev/core/testing`.
 */
import type { AgentConnection } from "./agent.js";
import type { ObservedSandbox, SandboxHandle, SandboxSpec, SandboxStats } from "./sandbox.js";

export interface DriverInfo {
  name: string;
  /**
   * e.g. "hibernate", "egress", "cgroup-v1", "cgroup-v2"; with images: "images" (spec.image is
   * honoured, root inside), "durable" (stop/start keep the disk), "fork", "snapshot",
   * "hibernate-memory" (hibernate writes processes to disk; without it hibernate freezes them).
   */
  features: string[];
}

export interface SandboxDriver {
  readonly name: string;
  /**
   * Checks the host can run this driver. Throws `driver_unavailable` with a message naming what
   * to install or enable.
   */
  probe(signal?: AbortSignal): Promise<DriverInfo>;
  /** Builds and starts a sandbox; resolves once its agent has announced itself (no sleeps). */
  create(spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle>;
  /** A channel to the sandbox's agent. Callers may connect many times; each is independent. */
  connect(handle: SandboxHandle, signal?: AbortSignal): Promise<AgentConnection>;
  hibernate(handle: SandboxHandle, signal?: AbortSignal): Promise<void>;
  resume(handle: SandboxHandle, signal?: AbortSignal): Promise<void>;
  /**
   * Durable sandboxes ("durable"): ends every process and keeps the disk; `start` brings the
   * sandbox back from it with the same spec (a new handle). Idempotent on a stopped sandbox.
   */
  stop?(handle: SandboxHandle, signal?: AbortSignal): Promise<void>;
  start?(handle: SandboxHandle, spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle>;
  /** Grows a sandbox's disk (running or stopped) to `diskMb`; shrinking is `invalid_request`. */
  growDisk?(handle: SandboxHandle, diskMb: number, signal?: AbortSignal): Promise<void>;
  /**
   * "snapshot": copies the sandbox's disk to `targetDir` (copy-on-write where the host allows,
   * consistent at one instant); `targetDir/upper` then holds its changes to its image, a layer
   * to put on top of the image's layers.
   */
  snapshot?(handle: SandboxHandle, targetDir: string, signal?: AbortSignal): Promise<void>;
  /**
   * "fork": new sandboxes (one per spec, same image) whose disks start as copy-on-write copies
   * of this one's, taken at one instant. Either all are created or none.
   */
  fork?(handle: SandboxHandle, specs: SandboxSpec[], signal?: AbortSignal): Promise<SandboxHandle[]>;
  /**
   * Warm pools: a sandbox created ahead of time (a spare, with an empty env) takes on `spec`,
   * which differs from the spare's only in `env`; processes started from then on get it.
   */
  adopt?(handle: SandboxHandle, spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle>;
  /** Idempotent: destroying a sandbox that is already gone succeeds. Removes its disk too. */
  destroy(handle: SandboxHandle, signal?: AbortSignal): Promise<void>;
  /** Every sandbox this driver finds on the host, live or not, for reconciliation. */
  list(signal?: AbortSignal): Promise<ObservedSandbox[]>;
  /** Whether the sandbox's processes are still there (cheap; used on re-adoption). */
  isAlive(handle: SandboxHandle, signal?: AbortSignal): Promise<boolean>;
  stats(handle: SandboxHandle, signal?: AbortSignal): Promise<SandboxStats>;
  /** Driver-side console output (start-up errors, OOM kills); readable after a failure. */
  logs(handle: SandboxHandle, signal?: AbortSignal): Promise<string>;
}
