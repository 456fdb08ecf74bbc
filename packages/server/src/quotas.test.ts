/**
 * Plans and quotas on a real server: admins define plans and put users on them; a create, run or
 * request past a limit answers 429 with a code and the limit's name, the user's event stream
 * hears about it, and metrics count it. The default plan covers users on none.
 */
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

let t: TestServer;
let fake: FakeProviders;
let alice: ApiClient;
let aliceId: string;

async function idOf(client: ApiClient): Promise<string> {
  return (await client.call<{ id: string }>("GET", "/v1/me")).body.id;
}

beforeAll(async () => {
  fake = await startFakeProviders();
  t = await startTestServer({
    upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
    // USD per million tokens: "priced" costs 10 in and 30 out; anything else 1 and 1.
    modelPrices: {
      priced: { inputPerMTokUsd: 10, outputPerMTokUsd: 30 },
      "*": { inputPerMTokUsd: 1, outputPerMTokUsd: 1 },
    },
  });
  alice = await createUser(t.api, "alice");
  aliceId = await idOf(alice);
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

describe("plans and quotas", () => {
  it("are managed by admins only, with clear answers for unknown and in-use plans", async () => {
    expect((await alice.call("GET", "/v1/admin/plans")).status).toBe(403);
    expect((await alice.call("PUT", "/v1/admin/plans/mine", { limits: {} })).status).toBe(403);
    const bad = await t.api.call<ErrorBody>("PUT", "/v1/admin/plans/small", { limits: { cpu: -1 } });
    expect(bad.status).toBe(400);
    const unknownLimit = await t.api.call<ErrorBody>("PUT", "/v1/admin/plans/small", { limits: { gpus: 1 } });
    expect(unknownLimit.status).toBe(400);

    const put = await t.api.call("PUT", "/v1/admin/plans/small", {
      description: "one sandbox",
      limits: { runningSandboxes: 1, memoryMb: 1024 },
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      name: "small",
      users: 0,
      limits: { runningSandboxes: 1, memoryMb: 1024 },
    });
    expect((await t.api.call("PUT", `/v1/admin/users/${aliceId}/plan`, { plan: "nope" })).status).toBe(404);
    expect((await t.api.call("PUT", "/v1/admin/users/usr_missing/plan", { plan: "small" })).status).toBe(404);
    const assigned = await t.api.call("PUT", `/v1/admin/users/${aliceId}/plan`, { plan: "small" });
    expect(assigned.status).toBe(200);
    expect(assigned.body).toMatchObject({ plan: "small", used: { runningSandboxes: 0 } });
    const listed = await t.api.call<{ items: { name: string; users: number }[] }>("GET", "/v1/admin/plans");
    expect(listed.body.items).toEqual([expect.objectContaining({ name: "small", users: 1 })]);
    const inUse = await t.api.call<ErrorBody>("DELETE", "/v1/admin/plans/small");
    expect(inUse.status).toBe(409);
    expect((await t.api.call("DELETE", "/v1/admin/plans/nope")).status).toBe(404);
  });

  it("refuses a sandbox past the running count or memory total, names the limit, and reports it", async () => {
    const events = await fetch(`${t.url}/v1/events`, {
      headers: { authorization: `Bearer ${alice.key}`, accept: "text/event-stream" },
    });
    const first = await alice.createSandbox({ network: "none", memoryMb: 512 });
    const second = await alice.call<ErrorBody>("POST", "/v1/sandboxes", { network: "none", memoryMb: 256 });
    expect(second.status).toBe(429);
    expect(second.body.error).toMatchObject({
      code: "quota_exceeded",
      details: { limit: "runningSandboxes", used: 1, max: 1, plan: "small" },
    });
    expect(second.body.error.message).toContain("runningSandboxes");

    // The quota.reached event reaches the user's stream.
    const reader = events.body?.getReader();
    let text = "";
    while (reader && !text.includes("quota.reached")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader?.cancel();
    expect(text).toContain('"limit":"runningSandboxes"');

    expect((await alice.call("DELETE", `/v1/sandboxes/${first}`)).status).toBe(200);
    const tooBig = await alice.call<ErrorBody>("POST", "/v1/sandboxes", { network: "none", memoryMb: 2048 });
    expect(tooBig.status).toBe(429);
    expect(tooBig.body.error.details).toMatchObject({ limit: "memoryMb", used: 0, max: 1024 });

    const metrics = (await t.api.call<string>("GET", "/metrics")).body;
    expect(metrics).toMatch(/^polydev_quota_refusals_total\{limit="runningSandboxes"\} 1$/m);
    expect(metrics).toMatch(/^polydev_quota_refusals_total\{limit="memoryMb"\} 1$/m);
  });

  it("lets exactly one of two racing creates through a limit of one", async () => {
    const results = await Promise.all([
      alice.call<{ id: string }>("POST", "/v1/sandboxes", { network: "none", memoryMb: 256 }),
      alice.call<{ id: string }>("POST", "/v1/sandboxes", { network: "none", memoryMb: 256 }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 429]);
    const created = results.find((r) => r.status === 201);
    const quota = await alice.call<{ used: { runningSandboxes: number; memoryMb: number } }>(
      "GET",
      "/v1/me/quota",
    );
    expect(quota.body).toMatchObject({ plan: "small", used: { runningSandboxes: 1, memoryMb: 256 } });
    await alice.call("DELETE", `/v1/sandboxes/${created?.body.id}`);
  });

  it("applies the default plan to users on none: runs per hour", async () => {
    const bob = await createUser(t.api, "bob");
    expect((await bob.call("GET", "/v1/me/quota")).body).toMatchObject({ plan: null, limits: {} });
    expect((await t.api.call("PUT", "/v1/admin/plans/default", { limits: { runsPerHour: 0 } })).status).toBe(
      200,
    );
    const refused = await bob.call<ErrorBody>("POST", "/v1/runs", { agent: "builtin", prompt: "hi" });
    expect(refused.status).toBe(429);
    expect(refused.body.error.details).toMatchObject({ limit: "runsPerHour", max: 0, plan: "default" });
    // Alice is on her own plan, which has no run limit: not refused for runs per hour.
    const aliceRun = await alice.call<ErrorBody>("POST", "/v1/runs", { agent: "builtin", prompt: "hi" });
    expect(aliceRun.body.error?.details?.limit).not.toBe("runsPerHour");
    expect((await t.api.call("DELETE", "/v1/admin/plans/default")).status).toBe(204);
    expect((await bob.call("GET", "/v1/me/quota")).body).toMatchObject({ plan: null });
  });

  it("refuses runs once the month's provider tokens reach the plan's limit", async () => {
    const dave = await createUser(t.api, "dave");
    const daveId = await idOf(dave);
    expect(
      (await t.api.call("PUT", "/v1/admin/plans/metered", { limits: { tokensPerMonth: 1000 } })).status,
    ).toBe(200);
    expect((await t.api.call("PUT", `/v1/admin/users/${daveId}/plan`, { plan: "metered" })).status).toBe(200);
    // Usage as the gateway records it.
    await t.server.store.usage.record({
      userId: daveId,
      sandboxId: "sbx_x",
      provider: "anthropic",
      model: "m",
      inputTokens: 600,
      outputTokens: 400,
      status: 200,
      at: Date.now(),
    });
    const refused = await dave.call<ErrorBody>("POST", "/v1/runs", { agent: "builtin", prompt: "hi" });
    expect(refused.status).toBe(429);
    expect(refused.body.error.details).toMatchObject({ limit: "tokensPerMonth", used: 1000, max: 1000 });
    expect((await dave.call("GET", "/v1/me/quota")).body).toMatchObject({ used: { tokensPerMonth: 1000 } });
  });

  it("counts the month's cost by the operator's model prices and refuses runs past the plan's", async () => {
    const fay = await createUser(t.api, "fay");
    const fayId = await idOf(fay);
    expect(
      (await t.api.call("PUT", "/v1/admin/plans/budget", { limits: { costPerMonthUsd: 2 } })).status,
    ).toBe(200);
    expect((await t.api.call("PUT", `/v1/admin/users/${fayId}/plan`, { plan: "budget" })).status).toBe(200);
    const usage = (model: string, inputTokens: number, outputTokens: number) =>
      t.server.store.usage.record({
        userId: fayId,
        sandboxId: "sbx_x",
        provider: "openai",
        model,
        inputTokens,
        outputTokens,
        status: 200,
        at: Date.now(),
      });
    // 0.1 M in at $10 + 0.02 M out at $30 = $1.60; 0.1 M at the default $1 = $0.10.
    await usage("priced", 100_000, 20_000);
    await usage("unlisted", 50_000, 50_000);
    // A model named after an Object.prototype key is unlisted too: $0.10, never NaN.
    await usage("constructor", 50_000, 50_000);
    const quota = await fay.call<{ used: { costPerMonthUsd: number } }>("GET", "/v1/me/quota");
    expect(quota.body.used.costPerMonthUsd).toBeCloseTo(1.8, 6);
    const sandbox = await fay.createSandbox({ network: "none" });
    fake.setScript([{ text: "ok" }]);
    const allowed = await fay.call<ErrorBody>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "hi",
      sandboxId: sandbox,
    });
    fake.setScript(undefined);
    expect(allowed.body.error?.details?.limit).toBeUndefined();
    await usage("priced", 0, 10_000);
    const refused = await fay.call<ErrorBody>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "hi",
      sandboxId: sandbox,
    });
    expect(refused.status).toBe(429);
    expect(refused.body.error.details).toMatchObject({ limit: "costPerMonthUsd", max: 2 });
  });

  it("refuses a provider request through the gateway once the month's tokens are used up", async () => {
    const erin = await createUser(t.api, "erin");
    const erinId = await idOf(erin);
    await erin.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-quota-test-key-123456" });
    expect(
      (await t.api.call("PUT", "/v1/admin/plans/capped", { limits: { tokensPerMonth: 50 } })).status,
    ).toBe(200);
    expect((await t.api.call("PUT", `/v1/admin/users/${erinId}/plan`, { plan: "capped" })).status).toBe(200);
    const box = await erin.createSandbox({ network: "none" });
    expect((await erin.call("POST", `/v1/sandboxes/${box}/gateway`)).status).toBe(200);
    // What a CLI in the sandbox does: the placeholder key, the gateway's base URL from its env.
    const ask = () =>
      erin.exec(box, [
        "python3",
        "-c",
        [
          "import json, os, urllib.request, urllib.error",
          "body = json.dumps({'model': 'claude-test', 'max_tokens': 16, 'messages': [{'role': 'user', 'content': 'hi'}]}).encode()",
          "req = urllib.request.Request(os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages', data=body, headers={'x-api-key': os.environ['ANTHROPIC_API_KEY'], 'content-type': 'application/json', 'anthropic-version': '2023-06-01'})",
          "try:",
          "    r = urllib.request.urlopen(req, timeout=20); print(r.status)",
          "except urllib.error.HTTPError as e:",
          "    print(e.code, json.loads(e.read())['error']['code'])",
        ].join("\n"),
      ]);
    expect((await ask()).body.stdout.trim()).toBe("200");
    await t.server.store.usage.record({
      userId: erinId,
      sandboxId: box,
      provider: "anthropic",
      model: "claude-test",
      inputTokens: 40,
      outputTokens: 40,
      status: 200,
      at: Date.now(),
    });
    expect((await ask()).body.stdout.trim()).toBe("429 quota_exceeded");
  });

  it("rate-limits a key past its plan's requests per minute, never an admin", async () => {
    const carol = await createUser(t.api, "carol");
    expect(
      (await t.api.call("PUT", "/v1/admin/plans/tiny", { limits: { requestsPerMinute: 5 } })).status,
    ).toBe(200);
    expect(
      (await t.api.call("PUT", `/v1/admin/users/${await idOf(carol)}/plan`, { plan: "tiny" })).status,
    ).toBe(200);
    // A bucket of 5, refilled at 5 a minute (one per 12 s): five pass (the /v1/me above came
    // before the plan), the rest wait for a refill.
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await carol.call("GET", "/v1/sandboxes")).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    const limited = await carol.call<ErrorBody>("GET", "/v1/sandboxes");
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({
      code: "rate_limited",
      details: { limit: "requestsPerMinute", max: 5 },
    });
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(12);
    expect((await alice.call("GET", "/v1/sandboxes")).status).toBe(200);
    for (let i = 0; i < 10; i++) expect((await t.api.call("GET", "/v1/admin/plans")).status).toBe(200);
  });
});
