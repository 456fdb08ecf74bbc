/**
 * DNS pins of one sandbox: which names each address was given out for. A TLS or HTTP
 * connection to a pinned address must name one of them, so an address learnt for an allowed
 * name cannot be reused under another name. One address may serve several names (shared CDN
 * front ends), so an address maps to a set of names. Bounded: at most `maxPins`
 * address-name pairs; the address answered longest ago goes first.
 */
export class EgressPins {
  private readonly byAddress = new Map<string, Map<string, number>>();
  private count = 0;

  constructor(private readonly maxPins: number) {}

  /** Pins `address` to `name` until `expiresAtMs`. */
  pin(address: string, name: string, expiresAtMs: number): void {
    let names = this.byAddress.get(address);
    if (names === undefined) {
      names = new Map();
    } else {
      // Re-inserted below, so the map's order stays "answered longest ago first".
      this.byAddress.delete(address);
      if (names.has(name)) {
        names.delete(name);
        this.count -= 1;
      }
    }
    names.set(name, expiresAtMs);
    this.count += 1;
    this.byAddress.set(address, names);
    while (this.count > this.maxPins) this.evictOldest();
  }

  /** The names `address` is currently pinned to (empty when none). */
  namesFor(address: string, nowMs: number): ReadonlySet<string> {
    const names = this.byAddress.get(address);
    const live = new Set<string>();
    if (names === undefined) return live;
    for (const [name, expiresAtMs] of names) {
      if (expiresAtMs > nowMs) {
        live.add(name);
      } else {
        names.delete(name);
        this.count -= 1;
      }
    }
    if (names.size === 0) this.byAddress.delete(address);
    return live;
  }

  get size(): number {
    return this.count;
  }

  private evictOldest(): void {
    const oldest = this.byAddress.entries().next();
    if (oldest.done === true) return;
    const [address, names] = oldest.value;
    const [firstName] = names.keys();
    if (firstName !== undefined) {
      names.delete(firstName);
      this.count -= 1;
    }
    if (names.size === 0) this.byAddress.delete(address);
  }
}
