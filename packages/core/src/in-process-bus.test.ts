import { describe, expect, it } from "vitest";
import { InProcessBus } from "./in-process-bus.js";
import { runBusContract } from "./testing/bus-contract.js";

runBusContract("in-process", async (limits) => new InProcessBus({ limits }));

describe("in-process bus specifics", () => {
  it("forgets idle topics, expired leases and counters, so memory follows live state", async () => {
    let now = 1_000_000;
    const bus = new InProcessBus({ clock: { now: () => now }, limits: { topicIdleTtlMs: 60_000 } });
    await bus.publish("old", "x");
    await bus.acquire("lock", { ttlMs: 1000 });
    await bus.increment("counter", { ttlMs: 1000 });
    now += 61_000;
    await bus.publish("new", "y"); // any call sweeps what has expired
    const controller = new AbortController();
    const replay = await bus.subscribe("old", { afterId: "0-0", signal: controller.signal });
    const iterator = replay[Symbol.asyncIterator]();
    const first = iterator.next();
    await bus.publish("old", "z");
    expect((await first).value).toMatchObject({ data: "z" });
    controller.abort();
    expect(await bus.increment("counter", { ttlMs: 1000 })).toBe(1);
    expect(await bus.acquire("lock", { ttlMs: 1000 })).toBeDefined();
    await bus.close();
  });

  it("refuses every call once closed, and ends its subscriptions", async () => {
    const bus = new InProcessBus();
    const subscription = await bus.subscribe("t", { signal: new AbortController().signal });
    const ended = (async () => {
      for await (const _ of subscription) {
        // nothing is published
      }
      return "ended";
    })();
    await bus.close();
    expect(await ended).toBe("ended");
    await expect(bus.publish("t", "x")).rejects.toMatchObject({ code: "internal" });
  });
});
