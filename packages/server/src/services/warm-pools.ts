/**
 * Warm pools: per image, a configured number of sandboxes started ahead of time (network none,
 * the default limits, an empty environment), so that a create matching them is a claim instead
 * of a start. A spare has no row and no owner until a create claims it (SandboxService writes
 * the row and the driver's `adopt` gives it the create's environment); the reconciler leaves held
 * spares alone, and after a crash they are orphans it destroys. A pool refills in the
 * background, one spare at a time, and never holds more than its size (spares ready plus the
 * one being made).
 */
import type { SandboxDriver, SandboxHandle, SandboxImage, SandboxLimits } from "@polydev/core";
import type { Logger } from "pino";

/** After a failed refill, wait this long before the next try (a broken image must not spin). */
const RETRY_AFTER_FAILURE_MS = 5_000;
/**
 * A claim's refill waits this long: starting a sandbox is mostly synchronous work on the
 * server's thread (files, cgroups, a spawn), which would otherwise land in the middle of the
 * claim it replaces and of that sandbox's first exec, the very path the pool is there to speed up.
 */
const REFILL_AFTER_CLAIM_MS = 250;

export interface WarmPoolsOptions {
  driver: SandboxDriver;
  /** Spares per image name. */
  sizes: Record<string, number>;
  limits: SandboxLimits;
  /** Resolves an image name to what the driver starts (its digest may change with a rebuild). */
  image(name: string): Promise<SandboxImage>;
  newId(): string;
  holds: { hold(sandboxId: string): void; release(sandboxId: string): void };
  log: Logger;
}

interface Spare {
  handle: SandboxHandle;
  digest: string;
}

export class WarmPools {
  private readonly spares = new Map<string, Spare[]>();
  private readonly filling = new Set<string>();
  private readonly retryAt = new Map<string, number>();
  private closed = false;
  private refillTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: WarmPoolsOptions) {}

  /** Whether a create of `image` with these limits and network could be served from a pool. */
  serves(imageName: string, limits: SandboxLimits, network: string): boolean {
    const { limits: pooled } = this.options;
    return (
      (this.options.sizes[imageName] ?? 0) > 0 &&
      network === "none" &&
      limits.cpu === pooled.cpu &&
      limits.memoryMb === pooled.memoryMb &&
      limits.diskMb === pooled.diskMb &&
      limits.pidsMax === pooled.pidsMax
    );
  }

  /**
   * A ready spare of `image` (of exactly this digest: an image rebuilt since makes its old
   * spares useless, and they are dropped), or undefined. The caller owns it from here: it
   * releases the hold once its row exists, or destroys it.
   */
  take(imageName: string, digest: string): SandboxHandle | undefined {
    const spares = this.spares.get(imageName) ?? [];
    let found: SandboxHandle | undefined;
    while (found === undefined && spares.length > 0) {
      const spare = spares.shift();
      if (spare === undefined) break;
      if (spare.digest === digest) found = spare.handle;
      else this.discard(spare.handle);
    }
    // One timer for a burst of claims, never pushed back: a steady stream of claims must not
    // keep the pool from refilling.
    if (this.refillTimer === undefined) {
      this.refillTimer = setTimeout(() => {
        this.refillTimer = undefined;
        this.refillSoon();
      }, REFILL_AFTER_CLAIM_MS);
      this.refillTimer.unref();
    }
    return found;
  }

  /** Starts filling every pool (at start-up, and a moment after claims). */
  refillSoon(): void {
    if (this.closed) return;
    for (const [name, size] of Object.entries(this.options.sizes)) {
      const ready = this.spares.get(name)?.length ?? 0;
      if (ready >= size || this.filling.has(name)) continue;
      if ((this.retryAt.get(name) ?? 0) > Date.now()) continue;
      this.filling.add(name);
      this.makeSpare(name)
        .then((spare) => {
          if (this.closed) {
            this.discard(spare.handle);
            return;
          }
          const list = this.spares.get(name) ?? [];
          list.push(spare);
          this.spares.set(name, list);
          this.retryAt.delete(name);
        })
        .catch((error: unknown) => {
          this.retryAt.set(name, Date.now() + RETRY_AFTER_FAILURE_MS);
          this.options.log.warn(
            { err: error, image: name },
            "could not start a spare sandbox for the warm pool",
          );
          setTimeout(() => this.refillSoon(), RETRY_AFTER_FAILURE_MS).unref();
        })
        .finally(() => {
          this.filling.delete(name);
          // One at a time per image: the next starts once this one is in.
          setImmediate(() => this.refillSoon());
        });
    }
  }

  /** How many spares are ready per image (for the admin overview and tests). */
  counts(): Record<string, number> {
    return Object.fromEntries(
      Object.keys(this.options.sizes).map((name) => [name, this.spares.get(name)?.length ?? 0]),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refillTimer);
    const all = [...this.spares.values()].flat();
    this.spares.clear();
    await Promise.all(all.map((spare) => this.destroy(spare.handle)));
  }

  private async makeSpare(name: string): Promise<Spare> {
    const image = await this.options.image(name);
    const id = this.options.newId();
    this.options.holds.hold(id);
    try {
      const handle = await this.options.driver.create({
        id,
        limits: this.options.limits,
        network: "none",
        env: {},
        image,
      });
      return { handle, digest: image.digest };
    } catch (error) {
      this.options.holds.release(id);
      throw error;
    }
  }

  private discard(handle: SandboxHandle): void {
    this.destroy(handle).catch(() => undefined);
  }

  private async destroy(handle: SandboxHandle): Promise<void> {
    try {
      await this.options.driver.destroy(handle);
    } finally {
      this.options.holds.release(handle.sandboxId);
    }
  }
}
