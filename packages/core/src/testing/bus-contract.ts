/**
 * The Bus contract: the in-process bus and the Redis one run these same cases. `open` returns
 * a bus with its own empty state each call (the suite closes it), with `limits` overriding the
 * defaults. Lease and counter expiry use real, short TTLs: both implementations keep real time.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BUS_BEGINNING, type Bus, type BusEvent, type BusLimits, compareEventIds } from "../bus.js";
import { PolydevError } from "../errors.js";

export type OpenBus = (limits?: Partial<BusLimits>) => Promise<Bus>;

/** Reads `count` events from a subscription, failing the test rather than hanging. */
async function take(iterable: AsyncIterable<BusEvent>, count: number, timeoutMs = 5000): Promise<BusEvent[]> {
  const events: BusEvent[] = [];
  if (count === 0) return events;
  const iterator = iterable[Symbol.asyncIterator]();
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(
      () => reject(new Error(`only ${events.length} of ${count} events arrived`)),
      timeoutMs,
    ).unref(),
  );
  while (events.length < count) {
    const next = await Promise.race([iterator.next(), timeout]);
    if (next.done) break;
    events.push(next.value);
  }
  return events;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function runBusContract(name: string, open: OpenBus): void {
  describe(`Bus contract: ${name}`, () => {
    const opened: Bus[] = [];
    const controllers: AbortController[] = [];
    const openBus = async (limits?: Partial<BusLimits>) => {
      const bus = await open(limits);
      opened.push(bus);
      return bus;
    };
    const signal = () => {
      const controller = new AbortController();
      controllers.push(controller);
      return controller.signal;
    };
    afterEach(async () => {
      for (const controller of controllers.splice(0)) controller.abort();
      await Promise.all(opened.splice(0).map((bus) => bus.close()));
    });

    it("delivers a topic's events in publish order with increasing ids, from the beginning", async () => {
      const bus = await openBus();
      const ids: string[] = [];
      for (const n of [1, 2, 3]) ids.push(await bus.publish("runs.r1", JSON.stringify({ n })));
      expect([...ids].sort(compareEventIds)).toEqual(ids);
      expect(new Set(ids).size).toBe(3);
      const events = await take(
        await bus.subscribe("runs.r1", { afterId: BUS_BEGINNING, signal: signal() }),
        3,
      );
      expect(events).toEqual(
        ids.map((id, i) => ({ id, topic: "runs.r1", data: JSON.stringify({ n: i + 1 }) })),
      );
    });

    it("without afterId delivers only what is published once subscribe has resolved", async () => {
      const bus = await openBus();
      await bus.publish("t", "before");
      const subscription = await bus.subscribe("t", { signal: signal() });
      await bus.publish("t", "after-1");
      await bus.publish("t", "after-2");
      expect((await take(subscription, 2)).map((e) => e.data)).toEqual(["after-1", "after-2"]);
    });

    it("resumes after an event id with nothing missed or repeated, then continues live", async () => {
      const bus = await openBus();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await bus.publish("t", `e${i}`));
      const subscription = await bus.subscribe("t", { afterId: ids[1], signal: signal() });
      const live = (async () => {
        await sleep(20);
        await bus.publish("t", "e5");
      })();
      expect((await take(subscription, 4)).map((e) => e.data)).toEqual(["e2", "e3", "e4", "e5"]);
      await live;
    });

    it("keeps topics apart, and many publishes within one millisecond stay ordered", async () => {
      const bus = await openBus();
      const a = await bus.subscribe("a", { signal: signal() });
      const b = await bus.subscribe("b", { signal: signal() });
      const published = await Promise.all(
        Array.from({ length: 50 }, (_, i) => bus.publish(i % 2 === 0 ? "a" : "b", String(i))),
      );
      // Ids are per topic (two topics may both have "<ms>-0"); within one they never repeat.
      expect(new Set(published.filter((_, i) => i % 2 === 0)).size).toBe(25);
      expect(new Set(published.filter((_, i) => i % 2 === 1)).size).toBe(25);
      const fromA = await take(a, 25);
      const fromB = await take(b, 25);
      expect(fromA.map((e) => e.topic)).toEqual(Array(25).fill("a"));
      expect(fromB.map((e) => e.topic)).toEqual(Array(25).fill("b"));
      for (const events of [fromA, fromB]) {
        expect(events.map((e) => e.id)).toEqual([...events.map((e) => e.id)].sort(compareEventIds));
        expect(events.map((e) => Number(e.data))).toEqual(
          events.map((e) => Number(e.data)).sort((x, y) => x - y),
        );
      }
    });

    it("retains only the newest events of a topic; a resume from a dropped id starts at the oldest kept", async () => {
      const bus = await openBus({ retainedEventsPerTopic: 3 });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push(await bus.publish("t", `e${i}`));
      const all = await take(await bus.subscribe("t", { afterId: BUS_BEGINNING, signal: signal() }), 3);
      expect(all.map((e) => e.data)).toEqual(["e3", "e4", "e5"]);
      const resumed = await take(await bus.subscribe("t", { afterId: ids[0], signal: signal() }), 3);
      expect(resumed.map((e) => e.data)).toEqual(["e3", "e4", "e5"]);
    });

    it("ends a waiting subscription when its signal aborts or it is closed", async () => {
      const bus = await openBus();
      const controller = new AbortController();
      const subscription = await bus.subscribe("t", { signal: controller.signal });
      const seen: BusEvent[] = [];
      const drained = (async () => {
        for await (const event of subscription) seen.push(event);
      })();
      await bus.publish("t", "one");
      await expect.poll(() => seen.length).toBe(1);
      controller.abort();
      await drained;
      expect(seen.map((e) => e.data)).toEqual(["one"]);

      const closed = await bus.subscribe("t", { signal: signal() });
      const ended = (async () => {
        for await (const _ of closed) {
          // no events are published after this subscription started
        }
        return "ended";
      })();
      await closed.close();
      expect(await ended).toBe("ended");
    });

    it("refuses oversized events, bad names and malformed resume ids with stable codes", async () => {
      const bus = await openBus({ maxEventBytes: 100 });
      await expect(bus.publish("t", "x".repeat(101))).rejects.toMatchObject({ code: "payload_too_large" });
      await expect(bus.publish("t", "é".repeat(51))).rejects.toMatchObject({ code: "payload_too_large" });
      expect(await bus.publish("t", "x".repeat(100))).toMatch(/^\d+-\d+$/);
      for (const bad of ["", "a b", "a\nb", "x".repeat(bus.limits.maxNameBytes + 1), "ké"]) {
        await expect(bus.publish(bad, "d")).rejects.toBeInstanceOf(PolydevError);
        await expect(bus.acquire(bad, { ttlMs: 1000 })).rejects.toMatchObject({ code: "invalid_request" });
        await expect(bus.increment(bad, { ttlMs: 1000 })).rejects.toMatchObject({ code: "invalid_request" });
        await expect(bus.count(bad)).rejects.toMatchObject({ code: "invalid_request" });
      }
      for (const bad of ["", "abc", "1-", "-1", "1-2-3", "$", ">", "+"]) {
        await expect(bus.subscribe("t", { afterId: bad, signal: signal() })).rejects.toMatchObject({
          code: "invalid_request",
        });
      }
      await expect(bus.acquire("l", { ttlMs: 0 })).rejects.toMatchObject({ code: "invalid_request" });
      await expect(bus.increment("c", { ttlMs: 1000, by: 0 })).rejects.toMatchObject({
        code: "invalid_request",
      });
    });

    it("gives a lock to one holder at a time; only the holder renews or releases it", async () => {
      const bus = await openBus();
      const contenders = await Promise.all(
        Array.from({ length: 5 }, () => bus.acquire("job.reconcile", { ttlMs: 10_000 })),
      );
      const holders = contenders.filter((lease) => lease !== undefined);
      expect(holders).toHaveLength(1);
      const lease = holders[0];
      if (!lease) throw new Error("no holder");
      expect(lease.name).toBe("job.reconcile");
      expect(await bus.acquire("job.reconcile", { ttlMs: 10_000 })).toBeUndefined();
      expect(await bus.acquire("job.other", { ttlMs: 10_000 })).toBeDefined();
      expect(await lease.renew(10_000)).toBe(true);
      expect(await lease.release()).toBe(true);
      expect(await lease.release()).toBe(false);
      expect(await lease.renew(10_000)).toBe(false);
      const next = await bus.acquire("job.reconcile", { ttlMs: 10_000 });
      expect(next?.token).not.toBe(lease.token);
      // The old holder cannot release or renew the new holder's lease.
      expect(await lease.release()).toBe(false);
      expect(await lease.renew(10_000)).toBe(false);
      expect(await bus.acquire("job.reconcile", { ttlMs: 10_000 })).toBeUndefined();
    });

    it("lets a lease expire after its TTL unless renewed", async () => {
      const bus = await openBus();
      const lease = await bus.acquire("lease", { ttlMs: 300 });
      expect(lease).toBeDefined();
      // Renewed twice within its TTL, it outlives the first TTL.
      for (let i = 0; i < 2; i++) {
        await sleep(150);
        expect(await lease?.renew(300)).toBe(true);
      }
      expect(await bus.acquire("lease", { ttlMs: 300 })).toBeUndefined();
      await sleep(450);
      const taken = await bus.acquire("lease", { ttlMs: 10_000 });
      expect(taken).toBeDefined();
      expect(await lease?.renew(300)).toBe(false);
      expect(await lease?.release()).toBe(false);
      expect(await taken?.release()).toBe(true);
    });

    it("counts per name within a window that starts at the first increment, then starts over", async () => {
      const bus = await openBus();
      expect(await bus.increment("signin.alice", { ttlMs: 300 })).toBe(1);
      expect(await bus.increment("signin.alice", { ttlMs: 300 })).toBe(2);
      expect(await bus.increment("signin.bob", { ttlMs: 300 })).toBe(1);
      expect(await bus.increment("signin.alice", { ttlMs: 300, by: 5 })).toBe(7);
      expect(await bus.count("signin.alice")).toBe(7);
      expect(await bus.count("signin.nobody")).toBe(0);
      await sleep(450);
      expect(await bus.count("signin.alice")).toBe(0);
      expect(await bus.increment("signin.alice", { ttlMs: 300 })).toBe(1);
      const big = 2 ** 40;
      expect(await bus.increment("tokens", { ttlMs: 10_000, by: big })).toBe(big);
      expect(await bus.increment("tokens", { ttlMs: 10_000, by: big })).toBe(2 * big);
    });

    it("takes tokens from a bucket that refills at its rate and refuses when empty, saying for how long", async () => {
      const bus = await openBus();
      const bucket = { capacity: 3, refillPerSecond: 4 };
      const takes = [];
      for (let i = 0; i < 4; i++) takes.push(await bus.take("rate.key_1", bucket));
      expect(takes.map((t) => t.allowed)).toEqual([true, true, true, false]);
      expect(takes.map((t) => t.remaining)).toEqual([2, 1, 0, 0]);
      expect(takes[0]?.retryAfterMs).toBe(0);
      // One token takes 250 ms at 4 per second; some of it may have passed already.
      const wait = takes[3]?.retryAfterMs ?? 0;
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(250);
      // Another bucket is its own.
      expect((await bus.take("rate.key_2", bucket)).allowed).toBe(true);
      await sleep(wait + 30);
      expect((await bus.take("rate.key_1", bucket)).allowed).toBe(true);
      // Left alone, it refills to its capacity and no further.
      await sleep(1000);
      const refilled = [];
      for (let i = 0; i < 4; i++) refilled.push((await bus.take("rate.key_1", bucket)).allowed);
      expect(refilled).toEqual([true, true, true, false]);
      for (const bad of [
        { capacity: 0, refillPerSecond: 1 },
        { capacity: 1.5, refillPerSecond: 1 },
        { capacity: 1, refillPerSecond: 0 },
      ])
        await expect(bus.take("rate.x", bad)).rejects.toMatchObject({ code: "invalid_request" });
      await expect(bus.take("bad name!", bucket)).rejects.toMatchObject({ code: "invalid_request" });
    });

    it("lets no more concurrent takes through than a bucket holds", async () => {
      const bus = await openBus();
      const takes = await Promise.all(
        Array.from({ length: 30 }, () => bus.take("burst", { capacity: 10, refillPerSecond: 0.001 })),
      );
      expect(takes.filter((t) => t.allowed)).toHaveLength(10);
    });

    it("loses no concurrent increment", async () => {
      const bus = await openBus();
      const values = await Promise.all(
        Array.from({ length: 40 }, () => bus.increment("c", { ttlMs: 10_000 })),
      );
      expect([...values].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    });
  });
}
