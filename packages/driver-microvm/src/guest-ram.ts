/**
 * Copy-on-write guest RAM (issue 10). A boot snapshot's template runs on a RAM file it shares
 * (memory-backend-file, share=on) and is saved with x-ignore-shared: the saved state is its
 * devices only, the RAM stays in the file. Every restore maps that RAM privately instead of
 * receiving a copy in the stream: the pages the guest never writes stay one copy for all the
 * sandboxes of the snapshot (a QEMU's PSS counts its share of them).
 *
 * QEMU 7.2 opens a RAM file read-write even to map it privately (its `readonly` makes the
 * guest's RAM read-only; 8.2 split that into `rom`), so it is given no file but a sealed memfd
 * (native/host-memfd.c) the server holds: a QEMU may map it, never change it.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PolydevError } from "@polydev/core";
import { ensureCacheEntry } from "./cache-entry.js";
import { hostCommand } from "./host-command.js";

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), "..", "native", "host-memfd.c");
/** How QEMU names the memfd it is given as its descriptor 3. */
export const GUEST_RAM_FD_PATH = "/proc/self/fd/3";

async function ensureHelper(cacheDir: string): Promise<string> {
  const source = await readFile(SOURCE);
  const key = createHash("sha256").update(source).digest("hex").slice(0, 24);
  const entry = await ensureCacheEntry(cacheDir, `memfd-${key}`, async (partial) => {
    await hostCommand("cc", ["-O2", "-o", join(partial, "polydev-memfd"), SOURCE], {
      what: "building polydev-memfd (install gcc)",
    });
  });
  return join(entry, "polydev-memfd");
}

/** A sealed memfd with `ramFile`'s pages, as a descriptor of this process. */
async function sealedCopy(helper: string, ramFile: string): Promise<number> {
  const child = spawn(helper, [ramFile], { env: {}, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-2000);
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  try {
    const fd = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString("utf8");
        const ready = /^ready (\d+)\n/.exec(out);
        if (ready) resolve(Number(ready[1]));
      });
      child.once("error", reject);
      exited.then(() => reject(new PolydevError("sandbox_failed", `polydev-memfd failed: ${stderr}`)));
    });
    // Our own descriptor of the same memfd: it outlives the helper.
    return openSync(`/proc/${child.pid}/fd/${fd}`, "r");
  } finally {
    child.stdin.end();
    await exited;
  }
}

/**
 * A copy handed out this recently may still be on its way to a QEMU's spawn: closed then, its
 * descriptor number could be reused by something else of the server's and reach the VM.
 */
const IN_USE_MS = 60_000;

interface HeldCopy {
  fd: Promise<number>;
  usedAt: number;
}

export class GuestRam {
  /** By RAM file and inode: a snapshot pruned and built again at the same path is another file. */
  private readonly held = new Map<string, HeldCopy>();

  constructor(private readonly cacheDir: string) {}

  /** The memfd of a boot snapshot's RAM file, made once per process and kept while used. */
  async descriptor(ramFile: string): Promise<number> {
    const key = `${ramFile}@${(await stat(ramFile)).ino}`;
    let held = this.held.get(key);
    if (held === undefined) {
      const fd = ensureHelper(this.cacheDir).then((helper) => sealedCopy(helper, ramFile));
      held = { fd, usedAt: Date.now() };
      this.held.set(key, held);
      fd.catch(() => this.held.delete(key));
    }
    const fd = await held.fd;
    held.usedAt = Date.now();
    return fd;
  }

  /**
   * Lets go of the copies no restore used for `idleMs`: each holds a snapshot's RAM in the
   * host's memory. The QEMUs that mapped one keep their mapping; a later restore makes it again.
   */
  release(idleMs: number, now = Date.now()): number {
    return this.releaseIdle(Math.max(idleMs, IN_USE_MS), now);
  }

  close(): void {
    this.releaseIdle(0, Date.now());
  }

  /**
   * Lets go of the copy of `ramFile` at once (a fork's RAM, once every fork's QEMU started). Only
   * for a caller that knows no spawn is still waiting for the descriptor.
   */
  forget(ramFile: string): void {
    this.letGo((key) => key.startsWith(`${ramFile}@`));
  }

  private releaseIdle(idleMs: number, now: number): number {
    return this.letGo((_key, held) => now - held.usedAt >= idleMs);
  }

  /** Closes (once opened) and forgets every copy `chosen` picks; returns how many. */
  private letGo(chosen: (key: string, held: HeldCopy) => boolean): number {
    let released = 0;
    for (const [key, held] of this.held) {
      if (!chosen(key, held)) continue;
      this.held.delete(key);
      held.fd.then(closeSync, () => undefined);
      released += 1;
    }
    return released;
  }
}
