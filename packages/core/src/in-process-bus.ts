/**
 * The embedded default Bus: everything in this process's memory, bounded by its limits. Right
 * for one server; several replicas need a shared one (Redis).
 */
import { randomBytes } from "node:crypto";
import {
  BUS_BEGINNING,
  type BucketTake,
  type Bus,
  type BusEvent,
  type BusLease,
  type BusLimits,
  type BusSubscription,
  compareEventIds,
  DEFAULT_BUS_LIMITS,
  type SubscribeOptions,
  type TokenBucket,
} from "./bus.js";
import {
  checkBucket,
  checkBusName,
  checkEventData,
  checkEventId,
  checkIncrement,
  checkTtl,
} from "./bus-checks.js";
import { type Clock, systemClock } from "./clock.js";
import { PolydevError } from "./errors.js";

interface Topic {
  events: BusEvent[];
  /** UTF-8 bytes of the retained events' data, counted against `maxRetainedBytes`. */
  bytes: number;
  lastMs: number;
  lastSeq: number;
  lastPublishAt: number;
  /** Subscribers waiting for the next event; each is called once, then forgotten. */
  waiters: Set<() => void>;
}

interface Expiring<T> {
  value: T;
  expiresAt: number;
}

/** Expired leases, counters and idle topics are swept at most this often (and lazily on access). */
const SWEEP_INTERVAL_MS = 1000;

export interface InProcessBusOptions {
  limits?: Partial<BusLimits> | undefined;
  /**
   * Event data this process keeps in all topics together (default 64 MiB). Past it, the topic
   * holding the most gives up its oldest events first, so one busy topic cannot push the others'
   * out. (Redis is bounded by its own `maxmemory`.)
   */
  maxRetainedBytes?: number | undefined;
  clock?: Clock | undefined;
}

export const DEFAULT_IN_PROCESS_RETAINED_BYTES = 64 * 1024 * 1024;

export class InProcessBus implements Bus {
  readonly limits: Readonly<BusLimits>;
  readonly #clock: Clock;
  readonly #maxRetainedBytes: number;
  #retainedBytes = 0;
  readonly #topics = new Map<string, Topic>();
  readonly #leases = new Map<string, Expiring<string>>();
  readonly #counters = new Map<string, Expiring<number>>();
  /** Tokens as of `at`; forgotten once refilled to full (`expiresAt`). */
  readonly #buckets = new Map<string, Expiring<{ tokens: number; at: number }>>();
  #lastSweepAt = 0;
  #closed = new AbortController();

  constructor(options: InProcessBusOptions = {}) {
    this.limits = Object.freeze({ ...DEFAULT_BUS_LIMITS, ...options.limits });
    this.#clock = options.clock ?? systemClock;
    this.#maxRetainedBytes = options.maxRetainedBytes ?? DEFAULT_IN_PROCESS_RETAINED_BYTES;
  }

  /** Bytes of event data retained now, across topics (for tests and metrics). */
  get retainedBytes(): number {
    return this.#retainedBytes;
  }

  async publish(topicName: string, data: string): Promise<string> {
    this.#checkOpen();
    checkBusName("topic", topicName, this.limits);
    checkEventData(data, this.limits);
    const now = this.#clock.now();
    this.#sweep(now);
    const topic = this.#topic(topicName);
    // Redis stream ids: the time, and a sequence within the same millisecond; never backwards.
    if (now > topic.lastMs) {
      topic.lastMs = now;
      topic.lastSeq = 0;
    } else {
      topic.lastSeq += 1;
    }
    const event: BusEvent = { id: `${topic.lastMs}-${topic.lastSeq}`, topic: topicName, data };
    topic.events.push(event);
    this.#account(topic, Buffer.byteLength(data));
    if (topic.events.length > this.limits.retainedEventsPerTopic) this.#dropOldest(topic);
    while (this.#retainedBytes > this.#maxRetainedBytes) {
      const largest = this.#largestTopic();
      if (!largest) break;
      this.#dropOldest(largest);
    }
    topic.lastPublishAt = now;
    const waiters = [...topic.waiters];
    topic.waiters.clear();
    for (const wake of waiters) wake();
    return event.id;
  }

  async subscribe(topicName: string, options: SubscribeOptions): Promise<BusSubscription> {
    this.#checkOpen();
    checkBusName("topic", topicName, this.limits);
    if (options.afterId !== undefined) checkEventId(options.afterId);
    const stop = new AbortController();
    const signal = AbortSignal.any([options.signal, stop.signal, this.#closed.signal]);
    let lastId = options.afterId ?? this.#topic(topicName).events.at(-1)?.id ?? BUS_BEGINNING;
    const bus = this;
    async function* events(): AsyncGenerator<BusEvent> {
      while (!signal.aborted) {
        const topic = bus.#topic(topicName);
        const next = firstAfter(topic.events, lastId);
        if (next < topic.events.length) {
          const event = topic.events[next] as BusEvent;
          lastId = event.id;
          yield event;
          continue;
        }
        await waitForPublish(topic, signal);
      }
    }
    return {
      [Symbol.asyncIterator]: () => events(),
      close: async () => stop.abort(),
    };
  }

  async acquire(name: string, options: { ttlMs: number }): Promise<BusLease | undefined> {
    this.#checkOpen();
    checkBusName("lock", name, this.limits);
    checkTtl(options.ttlMs);
    const now = this.#clock.now();
    this.#sweep(now);
    const held = this.#leases.get(name);
    if (held && held.expiresAt > now) return undefined;
    const token = randomBytes(16).toString("base64url");
    this.#leases.set(name, { value: token, expiresAt: now + options.ttlMs });
    const owns = () => {
      const current = this.#leases.get(name);
      return current !== undefined && current.value === token && current.expiresAt > this.#clock.now();
    };
    return {
      name,
      token,
      renew: async (ttlMs) => {
        checkTtl(ttlMs);
        if (!owns()) return false;
        this.#leases.set(name, { value: token, expiresAt: this.#clock.now() + ttlMs });
        return true;
      },
      release: async () => {
        if (!owns()) return false;
        this.#leases.delete(name);
        return true;
      },
    };
  }

  async increment(name: string, options: { ttlMs: number; by?: number }): Promise<number> {
    this.#checkOpen();
    checkBusName("counter", name, this.limits);
    checkTtl(options.ttlMs);
    const by = options.by ?? 1;
    checkIncrement(by);
    const now = this.#clock.now();
    this.#sweep(now);
    const current = this.#counters.get(name);
    if (current && current.expiresAt > now) {
      current.value += by;
      return current.value;
    }
    this.#counters.set(name, { value: by, expiresAt: now + options.ttlMs });
    return by;
  }

  async take(name: string, bucket: TokenBucket): Promise<BucketTake> {
    this.#checkOpen();
    checkBusName("bucket", name, this.limits);
    checkBucket(bucket);
    const now = this.#clock.now();
    this.#sweep(now);
    const kept = this.#buckets.get(name);
    const perMs = bucket.refillPerSecond / 1000;
    const tokens = kept
      ? Math.min(bucket.capacity, kept.value.tokens + (now - kept.value.at) * perMs)
      : bucket.capacity;
    const allowed = tokens >= 1;
    const left = allowed ? tokens - 1 : tokens;
    this.#buckets.set(name, {
      value: { tokens: left, at: now },
      expiresAt: now + Math.ceil((bucket.capacity - left) / perMs),
    });
    return {
      allowed,
      remaining: Math.floor(left),
      retryAfterMs: allowed ? 0 : Math.ceil((1 - left) / perMs),
    };
  }

  async count(name: string): Promise<number> {
    this.#checkOpen();
    checkBusName("counter", name, this.limits);
    const current = this.#counters.get(name);
    return current && current.expiresAt > this.#clock.now() ? current.value : 0;
  }

  async close(): Promise<void> {
    this.#closed.abort();
    this.#topics.clear();
    this.#retainedBytes = 0;
    this.#leases.clear();
    this.#counters.clear();
    this.#buckets.clear();
  }

  #account(topic: Topic, bytes: number): void {
    topic.bytes += bytes;
    this.#retainedBytes += bytes;
  }

  #dropOldest(topic: Topic): void {
    const dropped = topic.events.shift();
    if (dropped) this.#account(topic, -Buffer.byteLength(dropped.data));
  }

  #largestTopic(): Topic | undefined {
    let largest: Topic | undefined;
    for (const topic of this.#topics.values()) {
      if (topic.events.length > 0 && (!largest || topic.bytes > largest.bytes)) largest = topic;
    }
    return largest;
  }

  #checkOpen(): void {
    if (this.#closed.signal.aborted) throw new PolydevError("internal", "the bus is closed");
  }

  #topic(name: string): Topic {
    let topic = this.#topics.get(name);
    if (!topic) {
      topic = {
        events: [],
        bytes: 0,
        lastMs: 0,
        lastSeq: 0,
        lastPublishAt: this.#clock.now(),
        waiters: new Set(),
      };
      this.#topics.set(name, topic);
    }
    return topic;
  }

  /** Drops what has expired, so memory tracks live state and not everything ever named. */
  #sweep(now: number): void {
    if (now - this.#lastSweepAt < SWEEP_INTERVAL_MS) return;
    this.#lastSweepAt = now;
    for (const [name, lease] of this.#leases) if (lease.expiresAt <= now) this.#leases.delete(name);
    for (const [name, counter] of this.#counters) if (counter.expiresAt <= now) this.#counters.delete(name);
    for (const [name, bucket] of this.#buckets) if (bucket.expiresAt <= now) this.#buckets.delete(name);
    for (const [name, topic] of this.#topics) {
      // A topic someone waits on stays (it is empty or nearly so: it costs nothing to keep).
      if (topic.waiters.size === 0 && now - topic.lastPublishAt >= this.limits.topicIdleTtlMs) {
        this.#topics.delete(name);
        this.#retainedBytes -= topic.bytes;
      }
    }
  }
}

/** Index of the first event whose id is after `id` (events are in id order). */
function firstAfter(events: BusEvent[], id: string): number {
  let low = 0;
  let high = events.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareEventIds((events[middle] as BusEvent).id, id) <= 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

function waitForPublish(topic: Topic, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      topic.waiters.delete(done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    topic.waiters.add(done);
    signal.addEventListener("abort", done, { once: true });
  });
}
