/**
 * The sign-in throttle for replicas: failures counted in bus counters, so every replica sees
 * the same count and N replicas do not allow N times the guesses. Windows are fixed (aligned to
 * multiples of `windowMs`), not sliding as in the in-memory throttle: at most the limit fails in
 * a window, so at most twice the limit across a window boundary, and a refusal's Retry-After is
 * exactly when its window ends. Counter names carry a hash, never the user name or address.
 */
import { createHash } from "node:crypto";
import type { Bus } from "@polydev/core";
import {
  nameKey,
  type SignInLimiter,
  type SignInThrottleLimits,
  tooManyAttempts,
} from "./sign-in-throttle.js";

type Attempt = { name?: string | undefined; ip: string };

const hashed = (key: string): string => createHash("sha256").update(key).digest("hex").slice(0, 32);

export class BusSignInThrottle implements SignInLimiter {
  constructor(
    private readonly bus: Bus,
    private readonly limits: SignInThrottleLimits,
    private readonly now: () => number,
  ) {}

  async check(attempt: Attempt): Promise<void> {
    const now = this.now();
    const window = this.#window(now);
    const [byIp, byName] = await Promise.all([
      this.bus.count(this.#counter(`ip:${attempt.ip}`, window)),
      attempt.name === undefined
        ? 0
        : this.#nameCounter(attempt.name, window).then((counter) => this.bus.count(counter)),
    ]);
    if (byIp >= this.limits.maxFailuresPerIp || byName >= this.limits.maxFailuresPerName)
      throw tooManyAttempts((window + 1) * this.limits.windowMs - now);
  }

  async recordFailure(attempt: Attempt): Promise<void> {
    const now = this.now();
    const window = this.#window(now);
    // Kept a little past the window's end, then Redis (or the in-process bus) drops it.
    const ttlMs = (window + 1) * this.limits.windowMs - now + 1000;
    await this.bus.increment(this.#counter(`ip:${attempt.ip}`, window), { ttlMs });
    if (attempt.name !== undefined)
      await this.bus.increment(await this.#nameCounter(attempt.name, window), { ttlMs });
  }

  /** Counters only grow: a success moves the name on to a fresh counter (its next generation). */
  async recordSuccess(name: string): Promise<void> {
    await this.bus.increment(this.#generation(name), { ttlMs: 2 * this.limits.windowMs });
  }

  #window(now: number): number {
    return Math.floor(now / this.limits.windowMs);
  }

  #counter(key: string, window: number): string {
    return `signin:${hashed(key)}:${window}`;
  }

  #generation(name: string): string {
    return `signin-gen:${hashed(nameKey(name))}`;
  }

  async #nameCounter(name: string, window: number): Promise<string> {
    const generation = await this.bus.count(this.#generation(name));
    return this.#counter(`${nameKey(name)}#${generation}`, window);
  }
}
