/**
 * The Bus on Redis, for several replicas: topics are streams (XADD with an exact MAXLEN, read
 * with a blocking XREAD from the last id seen, so a subscriber resumes exactly), locks are keys
 * set with NX and a TTL and changed only by a script that checks the holder's token, counters
 * are INCRBY with an expiry set at the first increment.
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
  checkBucket,
  checkBusName,
  checkEventData,
  checkEventId,
  checkIncrement,
  checkTtl,
  DEFAULT_BUS_LIMITS,
  PolydevError,
  type SubscribeOptions,
  type TokenBucket,
} from "@polydev/core";
import { Redis } from "ioredis";

export interface RedisBusOptions {
  /**
   * `redis://[:password@]host:6379[/db]`, `rediss://…` (TLS), or a unix socket path
   * (`/run/redis/redis.sock`).
   */
  url: string;
  /** Prepended to every key, so deployments (or tests) can share one Redis (default "polydev:"). */
  keyPrefix?: string | undefined;
  limits?: Partial<BusLimits> | undefined;
  /** Connecting fails after this (default 10 000 ms). */
  connectTimeoutMs?: number | undefined;
  /** Connection errors while Redis is unreachable (ioredis keeps reconnecting meanwhile). */
  onError?: ((error: Error) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** Events read per XREAD; a subscriber further behind reads again at once. */
const READ_BATCH = 100;
/** A command waits this many reconnects at most while Redis is down, then fails (not queued forever). */
const MAX_RETRIES_PER_REQUEST = 3;

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1]) else return 0 end`;
const INCREMENT = `local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value`;

/**
 * A token bucket as a hash {tokens, at}, refilled from Redis's own clock (every replica sees one
 * time) and kept until it would be full again. KEYS[1]; ARGV: capacity, tokens per ms.
 * Returns {allowed 0|1, whole tokens left, ms until the next token when refused}.
 */
const TAKE = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2])
local kept = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = capacity
if kept[1] then tokens = math.min(capacity, tonumber(kept[1]) + (now - tonumber(kept[2])) * perMs) end
local allowed = 0
if tokens >= 1 then allowed = 1; tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((capacity - tokens) / perMs)))
local wait = 0
if allowed == 0 then wait = math.ceil((1 - tokens) / perMs) end
return {allowed, math.floor(tokens), wait}`;

export class RedisBus implements Bus {
  readonly limits: Readonly<BusLimits>;
  readonly #client: Redis;
  readonly #prefix: string;
  readonly #closed = new AbortController();
  readonly #onError: (error: Error) => void;

  private constructor(client: Redis, options: RedisBusOptions) {
    this.#client = client;
    this.#prefix = options.keyPrefix ?? "polydev:";
    this.limits = Object.freeze({ ...DEFAULT_BUS_LIMITS, ...options.limits });
    this.#onError = options.onError ?? (() => {});
  }

  /** Connects and checks Redis answers before returning. */
  static async open(options: RedisBusOptions): Promise<RedisBus> {
    options.signal?.throwIfAborted();
    const client = new Redis(options.url, {
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      maxRetriesPerRequest: MAX_RETRIES_PER_REQUEST,
      lazyConnect: true,
    });
    // Without a listener ioredis prints each reconnect failure; the owner decides what to log.
    client.on("error", (error: Error) => options.onError?.(error));
    try {
      await client.connect();
      await client.ping();
      options.signal?.throwIfAborted();
    } catch (error) {
      client.disconnect();
      throw error;
    }
    return new RedisBus(client, options);
  }

  async publish(topic: string, data: string): Promise<string> {
    this.#checkOpen();
    checkBusName("topic", topic, this.limits);
    checkEventData(data, this.limits);
    const key = this.#key("events", topic);
    const results = await this.#client
      .multi()
      .xadd(key, "MAXLEN", String(this.limits.retainedEventsPerTopic), "*", "d", data)
      .pexpire(key, this.limits.topicIdleTtlMs)
      .exec();
    const [added] = results ?? [];
    if (!added || added[0]) throw added?.[0] ?? new Error("XADD returned nothing");
    return String(added[1]);
  }

  async subscribe(topic: string, options: SubscribeOptions): Promise<BusSubscription> {
    this.#checkOpen();
    checkBusName("topic", topic, this.limits);
    if (options.afterId !== undefined) checkEventId(options.afterId);
    const key = this.#key("events", topic);
    // "Only what comes next" is pinned to the current last id now, not when reading starts.
    let lastId = options.afterId ?? (await this.#lastId(key));
    const stop = new AbortController();
    const signal = AbortSignal.any([options.signal, stop.signal, this.#closed.signal]);
    const client = this.#client;
    const onError = this.#onError;
    async function* events(): AsyncGenerator<BusEvent> {
      if (signal.aborted) return;
      // A blocking read holds its connection, so each subscription reads on its own one; ending
      // the subscription disconnects it, which also ends a read in progress.
      const reader = client.duplicate({ lazyConnect: false });
      reader.on("error", onError);
      const disconnect = () => reader.disconnect();
      signal.addEventListener("abort", disconnect, { once: true });
      try {
        while (!signal.aborted) {
          let reply: [string, [string, string[]][]][] | null;
          try {
            reply = await reader.xread("COUNT", READ_BATCH, "BLOCK", 0, "STREAMS", key, lastId);
          } catch (error) {
            if (signal.aborted) return;
            throw error;
          }
          for (const [, entries] of reply ?? []) {
            for (const [id, fields] of entries) {
              lastId = id;
              yield { id, topic, data: fieldValue(fields, "d") };
            }
          }
        }
      } finally {
        signal.removeEventListener("abort", disconnect);
        reader.disconnect();
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
    const key = this.#key("locks", name);
    const token = randomBytes(16).toString("base64url");
    const set = await this.#client.set(key, token, "PX", options.ttlMs, "NX");
    if (set !== "OK") return undefined;
    return {
      name,
      token,
      renew: async (ttlMs) => {
        checkTtl(ttlMs);
        return Number(await this.#client.eval(RENEW, 1, key, token, ttlMs)) === 1;
      },
      release: async () => Number(await this.#client.eval(RELEASE, 1, key, token)) === 1,
    };
  }

  async increment(name: string, options: { ttlMs: number; by?: number }): Promise<number> {
    this.#checkOpen();
    checkBusName("counter", name, this.limits);
    checkTtl(options.ttlMs);
    const by = options.by ?? 1;
    checkIncrement(by);
    return Number(await this.#client.eval(INCREMENT, 1, this.#key("counters", name), by, options.ttlMs));
  }

  async take(name: string, bucket: TokenBucket): Promise<BucketTake> {
    this.#checkOpen();
    checkBusName("bucket", name, this.limits);
    checkBucket(bucket);
    const [allowed, remaining, wait] = (await this.#client.eval(
      TAKE,
      1,
      this.#key("buckets", name),
      bucket.capacity,
      bucket.refillPerSecond / 1000,
    )) as [number, number, number];
    return { allowed: allowed === 1, remaining: Number(remaining), retryAfterMs: Number(wait) };
  }

  async count(name: string): Promise<number> {
    this.#checkOpen();
    checkBusName("counter", name, this.limits);
    // Redis drops the key when its window ends: absent reads as 0.
    return Number((await this.#client.get(this.#key("counters", name))) ?? 0);
  }

  async close(): Promise<void> {
    if (this.#closed.signal.aborted) return;
    this.#closed.abort();
    await this.#client.quit().catch(() => this.#client.disconnect());
  }

  #checkOpen(): void {
    if (this.#closed.signal.aborted) throw new PolydevError("internal", "the bus is closed");
  }

  #key(kind: "events" | "locks" | "counters" | "buckets", name: string): string {
    return `${this.#prefix}${kind}:${name}`;
  }

  async #lastId(key: string): Promise<string> {
    const [newest] = await this.#client.xrevrange(key, "+", "-", "COUNT", 1);
    return newest?.[0] ?? BUS_BEGINNING;
  }
}

/** Stream entries are flat [field, value, …] lists. */
function fieldValue(fields: string[], name: string): string {
  const at = fields.indexOf(name);
  return at >= 0 && at % 2 === 0 ? (fields[at + 1] ?? "") : "";
}

export function openRedisBus(options: RedisBusOptions): Promise<RedisBus> {
  return RedisBus.open(options);
}
