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

  it("keeps at most maxRetainedBytes of event data, taking from the topic that holds the most", async () => {
    const bus = new InProcessBus({ maxRetainedBytes: 10_000 });
    const kb = "x".repeat(1000);
    for (let i = 0; i < 3; i++) await bus.publish("quiet", kb);
    for (let i = 0; i < 50; i++) await bus.publish("busy", kb);
    expect(bus.retainedBytes).toBeLessThanOrEqual(10_000);
    /** Retained events of a topic: replayed up to an empty marker published after subscribing. */
    const retained = async (topic: string) => {
      const controller = new AbortController();
      const subscription = await bus.subscribe(topic, { afterId: "0-0", signal: controller.signal });
      await bus.publish(topic, "");
      let count = 0;
      for await (const event of subscription) {
        if (event.data === "") break;
        count += 1;
      }
      controller.abort();
      return count;
    };
    // The quiet topic kept all three; the busy one was cut down to what fits beside it.
    expect(await retained("quiet")).toBe(3);
    expect(await retained("busy")).toBe(7);
    await bus.close();
  });
});
