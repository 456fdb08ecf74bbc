/**
 * The Bus port: what replicas share that is not the database's job. Events (ordered topics a
 * subscriber can resume from an event id), locks with leases (one holder, expiring unless
 * renewed), and counters that expire (rate limits, throttles). In-process by default; Redis
 * when several servers run. Every implementation passes the contract in `core/testing`.
 */

/**
 * One published event. Ids increase in publish order within a topic (two topics may share an
 * id); compare them with `compareEventIds`.
 */
export interface BusEvent {
  id: string;
  topic: string;
  /** Whatever the publisher sent (JSON text by convention); at most `limits.maxEventBytes`. */
  data: string;
}

/** Start a subscription after every retained event of the topic ("from the beginning"). */
export const BUS_BEGINNING = "0-0";

export interface SubscribeOptions {
  /**
   * Deliver the retained events after this id, then live ones. `BUS_BEGINNING` replays all that
   * are retained; undefined (the default) delivers only events published after `subscribe`
   * resolved. An id older than the oldest retained event resumes at the oldest retained one.
   */
  afterId?: string | undefined;
  /** Ends the subscription: the iterator finishes (no error). */
  signal: AbortSignal;
}

/**
 * An ordered stream of a topic's events. Pull-based: a slow reader costs no memory on the
 * publisher's side, and one that falls further behind than the topic's retention skips ahead
 * to the oldest retained event.
 */
export interface BusSubscription extends AsyncIterable<BusEvent> {
  /** Stops delivery (as the signal does). */
  close(): Promise<void>;
}

/** A held lock. Only its holder's token renews or releases it; it expires after its TTL. */
export interface BusLease {
  readonly name: string;
  readonly token: string;
  /** Extends the lease to `ttlMs` from now; false if it had expired or was taken by another. */
  renew(ttlMs: number): Promise<boolean>;
  /** Gives it up; false if it was no longer this holder's. */
  release(): Promise<boolean>;
}

export interface TokenBucket {
  /** Tokens a full bucket holds: the largest burst (a positive whole number). */
  capacity: number;
  /** Tokens added per second (positive; fractions allowed). */
  refillPerSecond: number;
}

export interface BucketTake {
  allowed: boolean;
  /** Whole tokens left after this take. */
  remaining: number;
  /** When refused: ms until a token is there. 0 when allowed. */
  retryAfterMs: number;
}

export interface BusLimits {
  /** Events kept per topic for resuming (older ones are dropped first). */
  retainedEventsPerTopic: number;
  /** A topic nobody published to for this long is dropped with its events. */
  topicIdleTtlMs: number;
  /** A larger event is refused with `payload_too_large` before it is stored. */
  maxEventBytes: number;
  /** Topic, lock and counter names: 1..maxNameBytes of [A-Za-z0-9._:-]. */
  maxNameBytes: number;
}

export const DEFAULT_BUS_LIMITS: Readonly<BusLimits> = Object.freeze({
  retainedEventsPerTopic: 1000,
  topicIdleTtlMs: 24 * 60 * 60 * 1000,
  maxEventBytes: 64 * 1024,
  maxNameBytes: 200,
});

export interface Bus {
  readonly limits: Readonly<BusLimits>;
  /** Appends `data` to `topic` and returns the event's id. */
  publish(topic: string, data: string): Promise<string>;
  /** Resolves once the subscription is in place (see `SubscribeOptions.afterId`). */
  subscribe(topic: string, options: SubscribeOptions): Promise<BusSubscription>;
  /** The lease if `name` was free (or its lease had expired); undefined while another holds it. */
  acquire(name: string, options: { ttlMs: number }): Promise<BusLease | undefined>;
  /**
   * Adds `by` (default 1) to a counter and returns the new value. The counter is created at 0
   * with an expiry `ttlMs` from its first increment (a fixed window), after which it starts over.
   */
  increment(name: string, options: { ttlMs: number; by?: number }): Promise<number>;
  /** A counter's value now: 0 when it was never incremented or its window is over. */
  count(name: string): Promise<number>;
  /**
   * Takes one token from a token bucket, atomically across everyone sharing the bus. A bucket
   * starts full at `capacity` and refills continuously at `refillPerSecond` up to `capacity`; an
   * empty one refuses (and takes nothing) until a whole token has refilled, which `retryAfterMs`
   * says. A bucket left alone until it is full again is forgotten.
   */
  take(name: string, bucket: TokenBucket): Promise<BucketTake>;
  close(): Promise<void>;
}

/** Event ids are "<ms>-<seq>" (Redis stream ids): compared by both numbers, not as text. */
export function compareEventIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split("-").map(Number);
  const [bm = 0, bs = 0] = b.split("-").map(Number);
  return am !== bm ? Math.sign(am - bm) : Math.sign(as - bs);
}
