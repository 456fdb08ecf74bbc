/** Domain types for sandboxes, shared by the store, the drivers and the server. */

export const SANDBOX_STATES = [
  "creating",
  "running",
  "hibernated",
  "stopped",
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

/**
 * The file system a sandbox starts from: an image of the server's image store. Layers are host
 * directories of unpacked files whose owners are the image's own (uid 0 is the image's root, not
 * the host's); a driver maps them into the sandbox's user namespace and never changes them, so
 * many sandboxes share one copy. A driver that cannot use layers (a microVM building a disk)
 * reads the same directories.
 */
export interface SandboxImage {
  /** The image's name as the user gave it (`polydev/base`, `myteam/node:1`), for display. */
  name: string;
  /** Content address of the image (sha256 of its layer list and config). */
  digest: string;
  /** Host directories of the layers, base first; read-only to everything. */
  layers: string[];
  /** From the image config: environment, working directory and default user of processes. */
  env: Record<string, string>;
  workdir?: string | undefined;
  /** Default user of commands (a name or uid inside the image); root when absent. */
  user?: string | undefined;
  /**
   * Bytes of the image's files: a sandbox's disk holds them and its changes within diskMb, so a
   * driver limits the changes to diskMb less this.
   */
  sizeBytes?: number | undefined;
}

/** What a driver needs to build a sandbox; ids are chosen by the server, not the driver. */
export interface SandboxSpec {
  id: string;
  limits: SandboxLimits;
  network: NetworkMode;
  /** Environment every process in the sandbox starts with (on top of a clean base). */
  env: Record<string, string>;
  /**
   * The root file system. Absent: the driver's host view (the host's /usr read-only, a memory
   * home; no root inside), kept for drivers and hosts without image support.
   */
  image?: SandboxImage | undefined;
  /** Which driver makes it, where a server runs several (see DriverSet); drivers ignore it. */
  driver?: string | undefined;
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
