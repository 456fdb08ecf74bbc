/**
 * Counts failed sign-ins per user name and per client address in a sliding window, so passwords
 * cannot be guessed at speed: past the limit every attempt answers 429 (even a right password)
 * until the oldest failure leaves the window. In memory, per server process: the single-server
 * default. Replicas count on the bus instead (sign-in-throttle-bus.ts), so N replicas do not
 * allow N times the attempts.
 */
import { PolydevError } from "@polydev/core";

type Attempt = { name?: string | undefined; ip: string };

/** What sign-in routes use; async so the count can live on a shared bus. */
export interface SignInLimiter {
  /** Throws `too_many_attempts` (with `details.retryAfterMs`) when the name or the address is over its limit. */
  check(attempt: Attempt): Promise<void>;
  recordFailure(attempt: Attempt): Promise<void>;
  /** A right password clears the name's count (the address keeps its own). */
  recordSuccess(name: string): Promise<void>;
}

export function tooManyAttempts(retryAfterMs: number): PolydevError {
  return new PolydevError(
    "too_many_attempts",
    `too many failed sign-ins; try again in ${Math.ceil(retryAfterMs / 1000)} s`,
    { details: { retryAfterMs } },
  );
}

export interface SignInThrottleLimits {
  maxFailuresPerName: number;
  maxFailuresPerIp: number;
  windowMs: number;
}

/** Enough for a busy server; beyond it the oldest tracked keys are forgotten first. */
const MAX_TRACKED_KEYS = 10_000;

export class SignInThrottle implements SignInLimiter {
  readonly #failures = new Map<string, number[]>();

  constructor(
    private readonly limits: SignInThrottleLimits,
    private readonly now: () => number,
  ) {}

  async check(attempt: Attempt): Promise<void> {
    const now = this.now();
    const waits = [
      this.#waitMs(`ip:${attempt.ip}`, this.limits.maxFailuresPerIp, now),
      attempt.name === undefined
        ? 0
        : this.#waitMs(nameKey(attempt.name), this.limits.maxFailuresPerName, now),
    ];
    const retryAfterMs = Math.max(...waits);
    if (retryAfterMs > 0) throw tooManyAttempts(retryAfterMs);
  }

  async recordFailure(attempt: Attempt): Promise<void> {
    const now = this.now();
    this.#add(`ip:${attempt.ip}`, now);
    if (attempt.name !== undefined) this.#add(nameKey(attempt.name), now);
  }

  /** The address keeps its count: one user's success says nothing about the others it tried. */
  async recordSuccess(name: string): Promise<void> {
    this.#failures.delete(nameKey(name));
  }

  #waitMs(key: string, max: number, now: number): number {
    const times = this.#recent(key, now);
    if (times.length < max) return 0;
    const oldestThatCounts = times[times.length - max] ?? now;
    return oldestThatCounts + this.limits.windowMs - now;
  }

  #recent(key: string, now: number): number[] {
    const times = this.#failures.get(key);
    if (!times) return [];
    const recent = times.filter((t) => t > now - this.limits.windowMs);
    if (recent.length === 0) this.#failures.delete(key);
    else if (recent.length !== times.length) this.#failures.set(key, recent);
    return recent;
  }

  #add(key: string, now: number): void {
    const times = this.#recent(key, now);
    times.push(now);
    this.#failures.delete(key);
    this.#failures.set(key, times);
    while (this.#failures.size > MAX_TRACKED_KEYS) {
      const oldest = this.#failures.keys().next().value;
      if (oldest === undefined) break;
      this.#failures.delete(oldest);
    }
  }
}

export const nameKey = (name: string): string => `name:${name.toLowerCase()}`;
