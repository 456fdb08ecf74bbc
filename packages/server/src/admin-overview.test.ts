/** The operator's view across users: every sandbox with its owner, and stats that add up. */
import type { RunRecord } from "@polydev/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

const HOUR_MS = 3_600_000;
/** Real time shifted to the middle of an hour, so the test's "this hour" and the server's agree. */
const offsetMs = (Date.now() % HOUR_MS) - HOUR_MS / 2;
const clock = { now: () => Date.now() - offsetMs };

let t: TestServer;
let alice: ApiClient;
let bob: ApiClient;

beforeAll(async () => {
  t = await startTestServer({}, { clock });
  alice = await createUser(t.api, "alice");
  bob = await createUser(t.api, "bob");
});
afterAll(async () => {
  await t?.close();
});

function run(id: string, userId: string, createdAt: number): RunRecord {
  return {
    id,
    userId,
    sandboxId: "sbx_none",
    groupId: null,
    agent: "builtin",
    prompt: "p",
    model: null,
    cwd: ".",
    state: "succeeded",
    exitReason: null,
    finalText: null,
    inputTokens: 0,
    outputTokens: 0,
    timeoutMs: 1000,
    maxTurns: null,
    createdAt,
    startedAt: createdAt,
    endedAt: createdAt,
  };
}

describe("admin overview", () => {
  it("lists every user's sandboxes with their owner, newest first, and filters by state", async () => {
    const aliceBox = await alice.createSandbox({ network: "none" });
    const bobBox = await bob.createSandbox({ network: "none" });
    expect((await bob.call("DELETE", `/v1/sandboxes/${bobBox}`)).status).toBe(200);

    const all = await t.api.call<{
      items: { id: string; ownerName: string; ownerId: string; state: string }[];
    }>("GET", "/v1/admin/sandboxes");
    expect(all.status).toBe(200);
    expect(all.body.items.map((s) => [s.id, s.ownerName, s.state])).toEqual([
      [bobBox, "bob", "destroyed"],
      [aliceBox, "alice", "running"],
    ]);
    const running = await t.api.call<{ items: { id: string }[] }>("GET", "/v1/admin/sandboxes?state=running");
    expect(running.body.items.map((s) => s.id)).toEqual([aliceBox]);
    expect((await t.api.call("GET", "/v1/admin/sandboxes?state=nonsense")).status).toBe(400);
    const first = await t.api.call<{ items: { id: string }[]; nextCursor: string | null }>(
      "GET",
      "/v1/admin/sandboxes?limit=1",
    );
    expect(first.body.items.map((s) => s.id)).toEqual([bobBox]);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await t.api.call<{ items: { id: string }[]; nextCursor: string | null }>(
      "GET",
      `/v1/admin/sandboxes?limit=1&cursor=${encodeURIComponent(first.body.nextCursor ?? "")}`,
    );
    expect(second.body.items.map((s) => s.id)).toEqual([aliceBox]);
    expect(second.body.nextCursor).toBeNull();

    const stats = await t.api.call<{ users: number; sandboxesByState: Record<string, number> }>(
      "GET",
      "/v1/admin/stats",
    );
    expect(stats.body.users).toBe(3);
    expect(stats.body.sandboxesByState).toMatchObject({ running: 1, destroyed: 1, creating: 0, failed: 0 });
    await alice.call("DELETE", `/v1/sandboxes/${aliceBox}`);
  });

  it("counts runs per hour over the last 24 hours and usage per provider", async () => {
    const users = (await t.api.call<{ items: { id: string; name: string }[] }>("GET", "/v1/admin/users")).body
      .items;
    const aliceId = users.find((u) => u.name === "alice")?.id ?? "";
    const bobId = users.find((u) => u.name === "bob")?.id ?? "";
    const now = clock.now();
    const thisHour = Math.floor(now / HOUR_MS) * HOUR_MS;
    const store = t.server.store;
    await store.runs.insert(run("run_now_a", aliceId, now));
    await store.runs.insert(run("run_now_b", bobId, thisHour));
    await store.runs.insert(run("run_2h", aliceId, thisHour - 2 * HOUR_MS + 5));
    await store.runs.insert(run("run_23h", bobId, thisHour - 23 * HOUR_MS));
    await store.runs.insert(run("run_too_old", bobId, thisHour - 24 * HOUR_MS));
    const sandboxId = (await store.sandboxes.listAll())[0]?.id ?? "";
    const usage = { sandboxId, model: "m", status: 200 };
    await store.usage.record({
      ...usage,
      userId: aliceId,
      provider: "anthropic",
      inputTokens: 100,
      outputTokens: 10,
      at: now,
    });
    await store.usage.record({
      ...usage,
      userId: bobId,
      provider: "anthropic",
      inputTokens: 50,
      outputTokens: 5,
      at: now,
    });
    await store.usage.record({
      ...usage,
      userId: bobId,
      provider: "openai",
      inputTokens: 7,
      outputTokens: 3,
      at: now,
    });
    await store.usage.record({
      ...usage,
      userId: bobId,
      provider: "openai",
      inputTokens: 1000,
      outputTokens: 1000,
      at: thisHour - 30 * HOUR_MS,
    });

    const stats = await t.api.call<{
      runsPerHour: { hour: string; count: number }[];
      usageByProvider: { provider: string; requests: number; inputTokens: number; outputTokens: number }[];
    }>("GET", "/v1/admin/stats");
    expect(stats.status).toBe(200);
    const hours = stats.body.runsPerHour;
    expect(hours).toHaveLength(24);
    expect(hours[0]?.hour).toBe(new Date(thisHour - 23 * HOUR_MS).toISOString());
    expect(hours[23]?.hour).toBe(new Date(thisHour).toISOString());
    const counts = new Map(hours.map((h) => [h.hour, h.count]));
    expect(counts.get(new Date(thisHour).toISOString())).toBe(2);
    expect(counts.get(new Date(thisHour - 2 * HOUR_MS).toISOString())).toBe(1);
    expect(counts.get(new Date(thisHour - 23 * HOUR_MS).toISOString())).toBe(1);
    expect(hours.reduce((sum, h) => sum + h.count, 0)).toBe(4);
    expect(stats.body.usageByProvider).toEqual([
      { provider: "anthropic", requests: 2, inputTokens: 150, outputTokens: 15 },
      { provider: "openai", requests: 1, inputTokens: 7, outputTokens: 3 },
    ]);
  });

  it("is for admins only", async () => {
    for (const path of ["/v1/admin/sandboxes", "/v1/admin/stats"]) {
      const answer = await alice.call<{ error: { code: string } }>("GET", path);
      expect(answer.status).toBe(403);
      expect(answer.body.error.code).toBe("forbidden");
    }
  });
});
