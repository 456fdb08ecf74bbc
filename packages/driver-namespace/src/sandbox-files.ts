/** Host-side files of one sandbox: its directory, generated /etc entries, metadata. */
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { NetworkMode } from "@polydev/core";
import { SANDBOX_HOME, SANDBOX_UID } from "./launcher.js";

export interface SandboxMeta {
  sandboxId: string;
  hostUid: number;
  /** The bubblewrap process on the host (the sandbox's outermost process). */
  bwrapPid: number;
  /** The sandbox's init as the host sees it: the target of every nsenter. */
  initPid: number;
  initStartTime: number;
  network: NetworkMode;
  slirpPid: number | null;
  createdAt: number;
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
  etcFile(id: string, name: string): string {
    return join(this.dir(id), "etc", name);
  }

  /** Creates the directory tree and the /etc files the sandbox sees instead of the host's. */
  async prepare(id: string, network: NetworkMode): Promise<void> {
    await mkdir(this.rootDir, { recursive: true, mode: 0o700 });
    await mkdir(join(this.dir(id), "etc"), { recursive: true, mode: 0o700 });
    await mkdir(this.stateDir(id), { recursive: true, mode: 0o700 });
    const passwd = [
      "root:x:0:0:root:/root:/usr/sbin/nologin",
      `user:x:${SANDBOX_UID}:${SANDBOX_UID}:Polydev sandbox user:${SANDBOX_HOME}:/bin/bash`,
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
      "",
    ].join("\n");
    const group = ["root:x:0:", `user:x:${SANDBOX_UID}:`, "nogroup:x:65534:", ""].join("\n");
    await writeFile(this.etcFile(id, "passwd"), passwd, { mode: 0o644 });
    await writeFile(this.etcFile(id, "group"), group, { mode: 0o644 });
    await writeFile(this.etcFile(id, "hosts"), "127.0.0.1 localhost sandbox\n::1 localhost\n", {
      mode: 0o644,
    });
    // slirp4netns answers DNS on 10.0.2.3; the host's resolver address may be on its loopback.
    const resolv = network === "egress" ? "nameserver 10.0.2.3\n" : "";
    await writeFile(this.etcFile(id, "resolv.conf"), resolv, { mode: 0o644 });
  }

  async writeMeta(meta: SandboxMeta): Promise<void> {
    const file = this.metaFile(meta.sandboxId);
    await writeFile(`${file}.tmp`, JSON.stringify(meta), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }

  async readMeta(id: string): Promise<SandboxMeta | undefined> {
    if (!existsSync(this.metaFile(id))) return undefined;
    try {
      return JSON.parse(await readFile(this.metaFile(id), "utf8")) as SandboxMeta;
    } catch {
      return undefined;
    }
  }
}
