/**
 * The replicas' sign-in throttle: two servers' throttles on one Redis share the count (what one
 * replica saw fail, the other refuses), the refusal says when its window ends, a right password
 * clears the name's count, and counter names never carry the user name or the address.
 */
import { openRedisBus, type RedisBus } from "@polydev/bus-redis";
import { sharedTestRedis, type TestRedis } from "@polydev/bus-redis/testing";
import { InProcessBus } from "@polydev/core";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BusSignInThrottle } from "./sign-in-throttle-bus.js";

const LIMITS = { maxFailuresPerName: 3, maxFailuresPerIp: 5, windowMs: 60_000 };

let redis: TestRedis;
let buses: RedisBus[];

beforeAll(async () => {
  redis = await sharedTestRedis();
  buses = await Promise.all([openRedisBus({ url: redis.socket }), openRedisBus({ url: redis.socket })]);
});
afterAll(async () => {
  await Promise.all((buses ?? []).map((bus) => bus.close()));
  await redis?.stop();
});

describe("the sign-in throttle on the bus", () => {
  it("refuses on one replica what failed on the other, until the window ends", async () => {
    // A fixed time inside a window, so the assertion on Retry-After is exact.
    let now = 10 * LIMITS.windowMs + 15_000;
    const [a, b] = (buses ?? []).map((bus) => new BusSignInThrottle(bus, LIMITS, () => now));
    if (!a || !b) throw new Error("no buses");
    const attempt = { name: "Target", ip: "198.51.100.7" };
    for (let i = 0; i < 3; i++) {
      await (i % 2 === 0 ? a : b).check(attempt);
      await (i % 2 === 0 ? a : b).recordFailure(attempt);
    }
    await expect(b.check({ name: "target", ip: "203.0.113.1" })).rejects.toMatchObject({
      code: "too_many_attempts",
      details: { retryAfterMs: 45_000 },
    });
    // Another name from the same address is still let through (the address has 2 left).
    await a.check({ name: "someone-else", ip: attempt.ip });
    now += 45_000;
    await a.check(attempt);
  });

  it("clears a name's count on success, and keeps the address's", async () => {
    const now = 20 * LIMITS.windowMs;
    const [a, b] = (buses ?? []).map((bus) => new BusSignInThrottle(bus, LIMITS, () => now));
    if (!a || !b) throw new Error("no buses");
    for (let i = 0; i < 3; i++) await a.recordFailure({ name: "carol", ip: "192.0.2.9" });
    await expect(b.check({ name: "carol", ip: "192.0.2.10" })).rejects.toMatchObject({
      code: "too_many_attempts",
    });
    await b.recordSuccess("carol");
    await a.check({ name: "carol", ip: "192.0.2.10" });
    for (let i = 0; i < 2; i++) await b.recordFailure({ ip: "192.0.2.9" });
    await expect(a.check({ name: "dave", ip: "192.0.2.9" })).rejects.toMatchObject({
      code: "too_many_attempts",
    });
  });

  it("names its counters by hash only", async () => {
    const bus = new InProcessBus();
    const names: string[] = [];
    const spy = new Proxy(bus, {
      get(target, property) {
        if (property === "increment" || property === "count")
          return (name: string, ...rest: unknown[]) => {
            names.push(name);
            return Reflect.apply(Reflect.get(target, property) as (...args: unknown[]) => unknown, target, [
              name,
              ...rest,
            ]);
          };
        return Reflect.get(target, property);
      },
    });
    const throttle = new BusSignInThrottle(spy, LIMITS, () => 5);
    await throttle.recordFailure({ name: "secret-name", ip: "10.9.8.7" });
    await throttle.check({ name: "secret-name", ip: "10.9.8.7" });
    expect(names.length).toBeGreaterThan(0);
    expect(names.join(" ")).not.toMatch(/secret-name|10\.9\.8\.7/);
    // Redis holds nothing readable either.
    const client = new Redis(redis.socket);
    try {
      const keys = await client.keys("*signin*");
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.join(" ")).not.toMatch(/Target|target|carol|198\.51/);
    } finally {
      client.disconnect();
    }
  });
});
