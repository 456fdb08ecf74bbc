/**
 * Empty disks made ahead of time. A new disk is its own small file system in the storage pool
 * (a reflinked template, a loop device, a mount): tens of milliseconds that would otherwise sit
 * on every create's path. A few empty disks of the size creates last asked for wait here, and a
 * create whose disk is new takes one (its meta.json then names that disk). They are made a
 * moment after a take, not during it, because making one competes with the create that just
 * happened. Spares left by a crash are removed at start-up
 * (`sweep`): no sandbox names them.
 */
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { DiskStorage } from "./image-launch.js";

const SPARES = 2;
const REFILL_AFTER_TAKE_MS = 200;
const PREFIX = "spare-";

export class DiskSpares {
  private readonly ready: { rel: string; limitBytes: number }[] = [];
  private wantedLimit: number | undefined;
  private filling = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly storage: DiskStorage,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** A spare of exactly this size (its relative path), or undefined; refills afterwards. */
  take(limitBytes: number): string | undefined {
    this.wantedLimit = limitBytes;
    const index = this.ready.findIndex((spare) => spare.limitBytes === limitBytes);
    const spare = index >= 0 ? this.ready.splice(index, 1)[0] : undefined;
    this.refillAfterTake();
    return spare?.rel;
  }

  /**
   * Removes spares a previous run left behind (at start-up, before any are made): those no
   * sandbox took. A taken spare keeps its name; `inUse` holds every disk a sandbox names.
   */
  async sweep(inUse: ReadonlySet<string>): Promise<void> {
    const dir = join(this.storage.root, "disks");
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const rel = `disks/${name}`;
      if (name.startsWith(PREFIX) && !inUse.has(rel)) await this.storage.removeDir(rel).catch(this.onError);
    }
  }

  /**
   * Spares of another size than creates ask for now are removed as new ones are made. The timer
   * is not pushed back by later takes: in a steady stream of creates (one every few tens of
   * milliseconds) a refill that waited for silence never came, and every create past the
   * first two made its file system on its own path.
   */
  private refillAfterTake(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill().catch(this.onError);
    }, REFILL_AFTER_TAKE_MS);
    this.timer.unref();
  }

  private async refill(): Promise<void> {
    const limit = this.wantedLimit;
    if (this.filling || limit === undefined) return;
    this.filling = true;
    try {
      // Out of the list before the first await: a create may take one of them meanwhile (a
      // spare of its size), and then it is that sandbox's disk, not a spare to remove.
      const stale = this.ready.filter((spare) => spare.limitBytes !== limit);
      for (const spare of stale) this.ready.splice(this.ready.indexOf(spare), 1);
      for (const spare of stale) await this.storage.removeDir(spare.rel).catch(this.onError);
      while (this.ready.length < SPARES && this.wantedLimit === limit) {
        const rel = `disks/${PREFIX}${randomBytes(12).toString("hex")}`;
        await this.storage.createDir(rel, limit);
        this.ready.push({ rel, limitBytes: limit });
      }
    } finally {
      this.filling = false;
    }
  }
}
