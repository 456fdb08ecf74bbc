/**
 * The isolation port. Every backend (bubblewrap namespaces, gVisor, containers, microVMs,
 * Kubernetes) implements this and passes the shared contract suite in `@polydev/core/testing`.
 */
import type { AgentConnection } from "./agent.js";
import type { ObservedSandbox, SandboxHandle, SandboxSpec, SandboxStats } from "./sandbox.js";

export interface DriverInfo {
  name: string;
  /** e.g. "hibernate", "egress", "cgroup-v1", "cgroup-v2" */
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
