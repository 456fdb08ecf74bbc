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

  it("opens another user's sandbox with its lifecycle log, and destroys it in the owner's name", async () => {
    const box = await bob.createSandbox({ network: "none" });
    const opened = await t.api.call<{ id: string; ownerName: string; state: string }>(
      "GET",
      `/v1/admin/sandboxes/${box}`,
    );
    expect(opened.status).toBe(200);
    expect(opened.body).toMatchObject({ id: box, ownerName: "bob", state: "running" });
    const logs = await t.api.call<{ items: { message: string }[] }>("GET", `/v1/admin/sandboxes/${box}/logs`);
    expect(logs.body.items.map((l) => l.message)).toEqual([expect.stringMatching(/^created from /)]);
    // The owner's own routes stay the owner's: the admin's key does not open a shell or files there.
    expect((await t.api.call("GET", `/v1/sandboxes/${box}`)).status).toBe(404);

    const destroyed = await t.api.call<{ state: string; ownerName: string }>(
      "DELETE",
      `/v1/admin/sandboxes/${box}`,
    );
    expect(destroyed.status).toBe(200);
    expect(destroyed.body).toMatchObject({ state: "destroyed", ownerName: "bob" });
    expect((await bob.call<{ state: string }>("GET", `/v1/sandboxes/${box}`)).body.state).toBe("destroyed");
    const bobLogs = await bob.call<{ items: { message: string }[] }>("GET", `/v1/sandboxes/${box}/logs`);
    expect(bobLogs.body.items.map((l) => l.message)).toContain("destroying: destroyed by the admin admin");
    expect((await t.api.call("DELETE", `/v1/admin/sandboxes/${box}`)).status).toBe(200);
    expect((await t.api.call("GET", "/v1/admin/sandboxes/sbx_missing")).status).toBe(404);
  });

  it("is for admins only", async () => {
    const box = await alice.createSandbox({ network: "none" });
    for (const [method, path] of [
      ["GET", "/v1/admin/sandboxes"],
      ["GET", "/v1/admin/stats"],
      ["GET", `/v1/admin/sandboxes/${box}`],
      ["GET", `/v1/admin/sandboxes/${box}/logs`],
      ["DELETE", `/v1/admin/sandboxes/${box}`],
    ] as const) {
      const answer = await bob.call<{ error: { code: string } }>(method, path);
      expect(answer.status, `${method} ${path}`).toBe(403);
      expect(answer.body.error.code).toBe("forbidden");
    }
    expect((await alice.call<{ state: string }>("GET", `/v1/sandboxes/${box}`)).body.state).toBe("running");
    await alice.call("DELETE", `/v1/sandboxes/${box}`);
  });
});
