/**
 * The link between the host (the server process) and a microVM's agent over its one
 * virtio-serial port. It is @polydev/agent's multiplexer one level up: every channel the host
 * opens (`{type: "connection"}`) carries one whole, independent agent connection, so callers
 * connect as often as they like over the one stream. Channel 0 carries the link's own requests
 * (activate, stats, sync) as `{type: "request", id, request}` / `{type: "response", id, ...}`.
 *
 * A host that (re)attaches (a restore from the boot snapshot, a resume, a server restart)
 * cannot know where the guest's side of the stream stands, so it sends `{type: "reset", nonce}`
 * and ignores every byte until the guest's marker line carrying that nonce: after it the guest
 * has dropped every channel of the previous host and a fresh multiplexer begins with its hello.
 */
import type { ControlMessage } from "@polydev/agent";

export const LINK_VERSION = 1;

export function resetMarker(nonce: string): Buffer {
  return Buffer.from(`\n@@polydev-link ${nonce}@@\n`, "latin1");
}

/** What a restored sandbox becomes: its limits, its user and its environment. */
export interface ActivateRequest {
  type: "activate";
  env: Record<string, string>;
  uid: number;
  gid: number;
  home: string;
  memoryBytes: number;
  pidsMax: number;
  /** cpu.max quota per 100 ms period. */
  cpuQuotaUs: number;
  tmpBytes: number;
  /** The host's clock: a restored guest's is the snapshot's. */
  nowMs: number;
  /** Random bytes (hex) from the host, reseeding the guest's generator (see guest-run.c). */
  seed: string;
}

/**
 * An egress sandbox's NIC, configured by the guest after the restore (guest-network.ts): the
 * address, the default route and the resolver the sandbox's /etc/resolv.conf names.
 */
/** Every VM's NIC has this address (each is alone on its own link): the guest finds it by it. */
export const GUEST_MAC = "02:00:0a:00:03:02";

export interface NetworkRequest {
  type: "network";
  /** IPv4 address/prefix. */
  address: string;
  gateway: string;
  nameserver: string;
}

const IPV4 = "(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])";

export function parseNetwork(message: ControlMessage): NetworkRequest {
  const { address, gateway, nameserver } = message;
  if (typeof address !== "string" || !new RegExp(`^${IPV4}/(?:3[0-2]|[12]?[0-9])$`).test(address))
    throw new Error("network: address");
  for (const [name, value] of Object.entries({ gateway, nameserver })) {
    if (typeof value !== "string" || !new RegExp(`^${IPV4}$`).test(value))
      throw new Error(`network: ${name}`);
  }
  return { type: "network", address, gateway: String(gateway), nameserver: String(nameserver) };
}

/**
 * What a fork becomes after restoring its source's saved state: its own environment, the
 * host's clock and its own random seed (the rest of the activation, its user and limits, is
 * its source's).
 */
export interface ForkRequest {
  type: "fork";
  env: Record<string, string>;
  nowMs: number;
  seed: string;
}

export interface GuestStats {
  cpuUsageNs: number;
  memoryBytes: number;
  pids: number;
  diskBytes: number;
}

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/** The guest checks what it is asked to apply: a malformed request is refused, not half-applied. */
export function parseActivate(message: ControlMessage): ActivateRequest {
  const { env, uid, gid, home, memoryBytes, pidsMax, cpuQuotaUs, tmpBytes, nowMs, seed } = message;
  if (typeof seed !== "string" || !/^[0-9a-f]{2,1024}$/.test(seed)) throw new Error("activate: seed");
  if (typeof env !== "object" || env === null || Array.isArray(env)) throw new Error("activate: env");
  const entries = Object.entries(env);
  if (!entries.every(([, value]) => typeof value === "string")) throw new Error("activate: env values");
  if (typeof home !== "string" || !home.startsWith("/") || /[\n\0]/.test(home))
    throw new Error("activate: home");
  for (const [name, value] of Object.entries({
    uid,
    gid,
    memoryBytes,
    pidsMax,
    cpuQuotaUs,
    tmpBytes,
    nowMs,
  })) {
    if (!isCount(value)) throw new Error(`activate: ${name}`);
  }
  return {
    type: "activate",
    env: Object.fromEntries(entries.map(([key, value]) => [key, String(value)])),
    uid: Number(uid),
    gid: Number(gid),
    home,
    memoryBytes: Number(memoryBytes),
    pidsMax: Number(pidsMax),
    cpuQuotaUs: Number(cpuQuotaUs),
    tmpBytes: Number(tmpBytes),
    nowMs: Number(nowMs),
    seed,
  };
}

function parseEnv(env: unknown, what: string): Record<string, string> {
  if (typeof env !== "object" || env === null || Array.isArray(env)) throw new Error(`${what}: env`);
  const entries = Object.entries(env);
  if (!entries.every(([, value]) => typeof value === "string")) throw new Error(`${what}: env values`);
  return Object.fromEntries(entries.map(([key, value]) => [key, String(value)]));
}

export function parseFork(message: ControlMessage): ForkRequest {
  const { env, nowMs, seed } = message;
  if (typeof seed !== "string" || !/^[0-9a-f]{2,1024}$/.test(seed)) throw new Error("fork: seed");
  if (!isCount(nowMs)) throw new Error("fork: nowMs");
  return { type: "fork", env: parseEnv(env, "fork"), nowMs, seed };
}

export function parseStats(message: ControlMessage): GuestStats {
  const { cpuUsageNs, memoryBytes, pids, diskBytes } = message;
  return {
    cpuUsageNs: isCount(cpuUsageNs) ? cpuUsageNs : 0,
    memoryBytes: isCount(memoryBytes) ? memoryBytes : 0,
    pids: isCount(pids) ? pids : 0,
    diskBytes: isCount(diskBytes) ? diskBytes : 0,
  };
}
