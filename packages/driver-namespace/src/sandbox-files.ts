/** Host-side files of one sandbox: its directory, metadata, console log. */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { NetworkMode } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { ImageMeta } from "./image-launch.js";

export interface SandboxMeta {
  sandboxId: string;
  hostUid: number;
  /** The bubblewrap process on the host (the sandbox's outermost process). */
  bwrapPid: number;
  bwrapStartTime: number | null;
  /** The sandbox's init as the host sees it: the target of every nsenter. */
  initPid: number;
  initStartTime: number;
  network: NetworkMode;
  slirpPid: number | null;
  slirpStartTime: number | null;
  /** The sandbox's cgroup directories (one per v1 controller, or the one v2 directory). */
  cgroupPaths: string[];
  createdAt: number;
  /**
   * Host path of the exec server's socket (see native/exec-server.c), or null for a sandbox whose
   * init is the plain sleeping shell (no exec server built, or started by an older version).
   */
  execSocket: string | null;
  /**
   * The copy of /etc the sandbox runs on (see EtcSnapshots), kept until no sandbox uses it; null
   * for sandboxes started by versions that bound the host's /etc.
   */
  etcDir: string | null;
  /** An image sandbox's image and disk (absent or null: the host view). */
  image?: ImageMeta | null;
  /** Set while the sandbox is stopped: no processes, its disk kept. */
  stoppedAt?: number | null;
}

/** Ids become directory and cgroup names: nothing that could climb out of either. */
const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function isSandboxId(id: string): boolean {
  return SANDBOX_ID.test(id);
}

export function assertSandboxId(id: string): void {
  if (!isSandboxId(id)) {
    throw new PolydevError(
      "invalid_request",
      `sandbox id "${id}" must be 1-128 letters, digits, "_" or "-", starting with a letter or digit`,
    );
  }
}

function isMeta(value: unknown): value is SandboxMeta {
  if (typeof value !== "object" || value === null) return false;
  const meta: Partial<Record<keyof SandboxMeta, unknown>> = value;
  return (
    typeof meta.sandboxId === "string" &&
    typeof meta.hostUid === "number" &&
    typeof meta.initPid === "number" &&
    typeof meta.initStartTime === "number" &&
    typeof meta.bwrapPid === "number"
  );
}

export class SandboxFiles {
  constructor(readonly rootDir: string) {}

  dir(id: string): string {
    return join(this.rootDir, id);
  }
  metaFile(id: string): string {
    return join(this.dir(id), "meta.json");
  }
  consoleLog(id: string): string {
    return join(this.dir(id), "console.log");
  }
  stateDir(id: string): string {
    return join(this.dir(id), "agent");
  }
  /**
   * Creates the sandbox's directory, or fails with `conflict` if the id is taken: the caller
   * owns the directory (and may delete it on failure) only after this succeeded.
   */
  async claim(id: string): Promise<void> {
    mkdirSync(this.rootDir, { recursive: true, mode: 0o700 });
    try {
      mkdirSync(this.dir(id), { mode: 0o700 });
    } catch (error) {
      if (error instanceof Error && "code" in error && error.code === "EEXIST") {
        throw new PolydevError("conflict", `sandbox ${id} already exists on this host`);
      }
      throw error;
    }
  }

  /** The sandbox's agent state directory (synchronous on purpose: see CgroupsV1.create). */
  async prepare(id: string): Promise<void> {
    mkdirSync(this.stateDir(id), { recursive: true, mode: 0o700 });
  }

  /** Written whole under a temporary name, then renamed into place (synchronous: see prepare). */
  async writeMeta(meta: SandboxMeta): Promise<void> {
    const file = this.metaFile(meta.sandboxId);
    writeFileSync(`${file}.tmp`, JSON.stringify(meta), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  async readMeta(id: string): Promise<SandboxMeta | undefined> {
    try {
      const meta: unknown = JSON.parse(await readFile(this.metaFile(id), "utf8"));
      if (!isMeta(meta)) return undefined;
      // Files written before these fields existed still re-adopt.
      return {
        ...meta,
        bwrapStartTime: meta.bwrapStartTime ?? null,
        slirpStartTime: meta.slirpStartTime ?? null,
        cgroupPaths: meta.cgroupPaths ?? [],
        execSocket: typeof meta.execSocket === "string" ? meta.execSocket : null,
        etcDir: typeof meta.etcDir === "string" ? meta.etcDir : null,
      };
    } catch {
      return undefined;
    }
  }

  /** Every sandbox directory under the root, whether or not its meta.json got written. */
  async ids(): Promise<string[]> {
    const entries = await readdir(this.rootDir, { withFileTypes: true }).catch(() => []);
    return entries.filter((entry) => entry.isDirectory() && SANDBOX_ID.test(entry.name)).map((e) => e.name);
  }
}
