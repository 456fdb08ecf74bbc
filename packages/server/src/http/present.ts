/** Store records → API shapes. Secrets and driver internals never leave through here. */
import type { BackgroundProcessInfo, FileEntry, SandboxRecord } from "@polydev/core";

const iso = (ms: number): string => new Date(ms).toISOString();

export function presentSandbox(s: SandboxRecord) {
  return {
    id: s.id,
    name: s.name,
    image: s.image,
    state: s.state,
    failureReason: s.failureReason,
    driver: s.driver,
    cpu: s.cpu,
    memoryMb: s.memoryMb,
    diskMb: s.diskMb,
    pidsMax: s.pidsMax,
    network: s.network,
    egressPolicy: s.egressPolicy,
    envKeys: Object.keys(s.env),
    metadata: s.metadata,
    timeoutMs: s.timeoutMs,
    idleTimeoutMs: s.idleTimeoutMs,
    createdAt: iso(s.createdAt),
    expiresAt: iso(s.expiresAt),
    lastActivityAt: iso(s.lastActivityAt),
    stateChangedAt: iso(s.stateChangedAt),
    node: s.node,
  };
}

export function presentProcess(p: BackgroundProcessInfo) {
  return { ...p, startedAt: iso(p.startedAt) };
}

export function presentFile(f: FileEntry) {
  return { ...f, modifiedAt: iso(f.modifiedAt) };
}

export function toArgv(cmd: string | string[]): string[] {
  return typeof cmd === "string" ? ["/bin/sh", "-c", cmd] : cmd;
}
