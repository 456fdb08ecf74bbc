import { PolydevError } from "@polydev/core";

/**
 * Hands every sandbox its own unprivileged host uid (and gid of the same number), so sandboxes
 * cannot signal, ptrace or read each other's processes even if they escaped their namespaces.
 * Uids in use are persisted in each sandbox's meta.json; this in-memory set, seeded once from
 * them, makes allocation race-free among concurrent creates of one driver.
 */
export class UidAllocator {
  private used: Promise<Set<number>> | undefined;

  constructor(
    private readonly base: number,
    private readonly range: number,
    private readonly scanUsed: () => Promise<number[]>,
  ) {}

  async allocate(): Promise<number> {
    // One scan shared by every caller: creates that start together must not each seed their own set.
    this.used ??= this.scanUsed().then((uids) => new Set(uids));
    const used = await this.used;
    for (let offset = 1; offset <= this.range; offset++) {
      const uid = this.base + offset;
      if (!used.has(uid)) {
        used.add(uid);
        return uid;
      }
    }
    throw new PolydevError("limit_exceeded", `all ${this.range} sandbox uids above ${this.base} are in use`);
  }

  async release(uid: number): Promise<void> {
    (await this.used)?.delete(uid);
  }
}
