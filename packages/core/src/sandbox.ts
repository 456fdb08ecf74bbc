/** Domain types for sandboxes, shared by the store, the drivers and the server. */

export const SANDBOX_STATES = [
  "creating",
  "running",
  "hibernated",
  "destroying",
  "destroyed",
  "failed",
] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

/**
 * - none: loopback only.
 * - egress: the outside world through a user-mode NAT (slirp4netns for the namespace driver).
 * - allowlist: every outbound TCP connection and DNS query is intercepted inside the sandbox's
 *   own network namespace and carried to the server (`AgentConnection.interceptEgress`), which
 *   decides each against the sandbox's egress policy; nothing else leaves.
 */
export const NETWORK_MODES = ["none", "egress", "allowlist"] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];

/**
 * The rules of an allow-list sandbox. Entries are domain names (`registry.example.com`),
 * wildcards below a domain (`*.example.com`), `*` (any name), IP addresses and CIDRs; `deny`
 * wins over `allow`; `presets` name admin-defined lists whose entries are added.
 */
export interface EgressPolicy {
  allow: string[];
  deny: string[];
  presets: string[];
}

/** A network as chosen on create (or as a user's default). */
export type NetworkChoice = { mode: "none" | "egress" } | ({ mode: "allowlist" } & EgressPolicy);

export interface SandboxLimits {
  /** CPU share in cores (0.1 … host cores). */
  cpu: number;
  memoryMb: number;
  diskMb: number;
  pidsMax: number;
}

/** What a driver needs to build a sandbox; ids are chosen by the server, not the driver. */
export interface SandboxSpec {
  id: string;
  limits: SandboxLimits;
  network: NetworkMode;
  /** Environment every process in the sandbox starts with (on top of a clean base). */
  env: Record<string, string>;
}

/**
 * A driver's reference to a live sandbox. `data` is the driver's own JSON (pids, paths,
 * container ids); the server stores it verbatim and never looks inside.
 */
export interface SandboxHandle {
  sandboxId: string;
  driver: string;
  data: Record<string, unknown>;
}

export interface SandboxStats {
  cpuUsageNs: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  pids: number;
  diskBytes: number;
}

/** One sandbox as a driver sees it on the host, for reconciliation. */
export interface ObservedSandbox {
  sandboxId: string;
  handle: SandboxHandle;
  alive: boolean;
}
