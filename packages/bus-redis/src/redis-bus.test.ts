import { randomBytes } from "node:crypto";
import { runBusContract } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRedisBus } from "./redis-bus.js";
import { sharedTestRedis, type TestRedis } from "./testing/redis-server.js";

let redis: TestRedis;
beforeAll(async () => {
  redis = await sharedTestRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** Each bus gets its own key prefix: cases share the server, never keys. */
const prefix = () => `test:${randomBytes(6).toString("hex")}:`;

runBusContract("redis", (limits) => openRedisBus({ url: redis.socket, keyPrefix: prefix(), limits }));

describe("redis bus specifics", () => {
  it("shares events, locks and counters between two replicas on the same Redis", async () => {
    const keyPrefix = prefix();
    const a = await openRedisBus({ url: redis.socket, keyPrefix });
    const b = await openRedisBus({ url: redis.socket, keyPrefix });
    const controller = new AbortController();
    try {
      const subscription = await b.subscribe("runs.r1", { signal: controller.signal });
      const id = await a.publish("runs.r1", '{"seq":1}');
      const iterator = subscription[Symbol.asyncIterator]();
      expect((await iterator.next()).value).toEqual({ id, topic: "runs.r1", data: '{"seq":1}' });

      const lease = await a.acquire("job.reconcile", { ttlMs: 10_000 });
      expect(lease).toBeDefined();
      expect(await b.acquire("job.reconcile", { ttlMs: 10_000 })).toBeUndefined();
      await lease?.release();
      expect(await b.acquire("job.reconcile", { ttlMs: 10_000 })).toBeDefined();

      expect(await a.increment("rate.key_1", { ttlMs: 10_000 })).toBe(1);
      expect(await b.increment("rate.key_1", { ttlMs: 10_000 })).toBe(2);
    } finally {
      controller.abort();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("keeps every key under its prefix, with an expiry, so nothing it stores outlives its TTL", async () => {
    const keyPrefix = prefix();
    const bus = await openRedisBus({ url: redis.socket, keyPrefix, limits: { topicIdleTtlMs: 60_000 } });
    const { Redis } = await import("ioredis");
    const raw = new Redis(redis.socket);
    try {
      await bus.publish("t", "x");
      await bus.acquire("l", { ttlMs: 5000 });
      await bus.increment("c", { ttlMs: 5000 });
      const keys = (await raw.keys(`${keyPrefix}*`)).sort();
      expect(keys).toEqual([`${keyPrefix}counters:c`, `${keyPrefix}events:t`, `${keyPrefix}locks:l`]);
      for (const key of keys) {
        const ttl = await raw.pttl(key);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(60_000);
      }
    } finally {
      raw.disconnect();
      await bus.close();
    }
  });

  it("fails to open, rather than hanging, when nothing listens at the URL", async () => {
    await expect(openRedisBus({ url: `${redis.socket}.missing`, connectTimeoutMs: 1000 })).rejects.toThrow();
  });
});
