/**
 * Webhooks end to end: a receiver on loopback gets signed deliveries when real runs (the built-in
 * agent against the fake providers, in real sandboxes) and groups end; a failing receiver is
 * retried with back-off; queued deliveries survive a restart; the signing secret is never answered
 * again nor stored in plain text; and destinations on loopback, private and link-local addresses
 * are refused unless the operator allows them.
 */
import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configFromEnv, parseConfig } from "./config.js";
import { sendWebhook, webhookDispatcher } from "./services/webhook-sender.js";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

interface Received {
  at: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** A loopback receiver; `answer` picks each request's status (default 204). */
async function receiver(answer: (index: number) => number = () => 204) {
  const received: Received[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (c: Buffer) => chunks.push(c));
    request.on("end", () => {
      const index = received.length;
      received.push({ at: Date.now(), headers: request.headers, body: Buffer.concat(chunks).toString() });
      response.statusCode = answer(index);
      response.end(response.statusCode >= 300 ? "receiver says no" : "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    received,
    url: `http://127.0.0.1:${port}/hook`,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The check a receiver runs (docs/webhooks.md). */
function verify(secret: string, header: string, body: string): boolean {
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=", 2) as [string, string]));
  const expected = createHmac("sha256", secret).update(`${parts.t}.${body}`).digest("hex");
  return parts.v1 === expected && Math.abs(Date.now() / 1000 - Number(parts.t)) < 300;
}

interface Created {
  id: string;
  url: string;
  events: string[];
  secret: string;
}

interface Delivery {
  id: string;
  event: string;
  state: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
}

async function waitForRun(api: ApiClient, id: string): Promise<{ state: string }> {
  for (;;) {
    const run = (await api.call<{ state: string }>("GET", `/v1/runs/${id}`)).body;
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.state)) return run;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("webhooks to a receiver on loopback (operator allowed private destinations)", () => {
  let fake: FakeProviders;
  let t: TestServer;
  let alice: ApiClient;
  let bob: ApiClient;
  let sandbox: string;

  beforeAll(async () => {
    fake = await startFakeProviders();
    t = await startTestServer({
      upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
      webhooks: { allowPrivate: true, retryBaseMs: 300, pollIntervalMs: 100, maxAttempts: 4 },
    });
    alice = await createUser(t.api, "alice");
    bob = await createUser(t.api, "bob");
    await alice.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
    sandbox = await alice.createSandbox();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  it("delivers a signed run.finished for a real run, answers the secret once and stores it sealed", async () => {
    const hook = await receiver();
    try {
      const created = await alice.call<Created>("POST", "/v1/webhooks", {
        url: hook.url,
        events: ["run.finished"],
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const secret = created.body.secret;
      expect(secret).toMatch(/^whsec_/);
      const listed = await alice.call<{ items: Record<string, unknown>[] }>("GET", "/v1/webhooks");
      expect(listed.body.items).toEqual([
        { id: created.body.id, url: hook.url, events: ["run.finished"], createdAt: expect.any(String) },
      ]);
      expect(JSON.stringify(listed.body)).not.toContain(secret);

      const run = await alice.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "say hello",
        sandboxId: sandbox,
      });
      expect(run.status).toBe(201);
      expect((await waitForRun(alice, run.body.id)).state).toBe("succeeded");
      await expect.poll(() => hook.received.length, { timeout: 30_000 }).toBe(1);
      const [got] = hook.received;
      if (!got) throw new Error("nothing received");
      expect(verify(secret, String(got.headers["polydev-signature"]), got.body)).toBe(true);
      // A different secret or a changed body does not verify: the check can fail.
      expect(verify(`${secret}x`, String(got.headers["polydev-signature"]), got.body)).toBe(false);
      expect(verify(secret, String(got.headers["polydev-signature"]), `${got.body} `)).toBe(false);
      const payload = JSON.parse(got.body) as { id: string; type: string; data: Record<string, unknown> };
      expect(payload.type).toBe("run.finished");
      expect(got.headers["polydev-event"]).toBe("run.finished");
      expect(got.headers["polydev-delivery"]).toBe(payload.id);
      expect(payload.data).toMatchObject({
        runId: run.body.id,
        sandboxId: sandbox,
        agent: "builtin",
        state: "succeeded",
      });

      await expect
        .poll(
          async () =>
            (await alice.call<{ items: Delivery[] }>("GET", `/v1/webhooks/${created.body.id}/deliveries`))
              .body.items,
        )
        .toEqual([
          expect.objectContaining({ id: payload.id, state: "delivered", attempts: 1, lastStatus: 204 }),
        ]);
      // Another user sees neither the webhook nor its log.
      expect((await bob.call("GET", `/v1/webhooks/${created.body.id}/deliveries`)).status).toBe(404);
      expect((await bob.call("DELETE", `/v1/webhooks/${created.body.id}`)).status).toBe(404);
      expect((await bob.call<{ items: unknown[] }>("GET", "/v1/webhooks")).body.items).toEqual([]);

      // The database file (and its WAL) holds the sealed secret only.
      for (const file of ["polydev.db", "polydev.db-wal"]) {
        const bytes = await readFile(join(t.dataDir, file)).catch(() => Buffer.alloc(0));
        expect(bytes.includes(Buffer.from(secret))).toBe(false);
      }
      expect(await readFile(t.logFile, "utf8")).not.toContain(secret);
      expect((await alice.call("DELETE", `/v1/webhooks/${created.body.id}`)).status).toBe(200);
      expect((await alice.call("GET", `/v1/webhooks/${created.body.id}/deliveries`)).status).toBe(404);
    } finally {
      await hook.close();
    }
  }, 120_000);

  it("sends group.finished once when every run of a group has ended, and run.failed for a failed run", async () => {
    const hook = await receiver();
    try {
      const created = await alice.call<Created>("POST", "/v1/webhooks", {
        url: hook.url,
        events: ["group.finished", "group.failed", "run.failed"],
      });
      expect(created.status).toBe(201);
      fake.setScript({
        anthropic: (view) =>
          view.prompt.includes("fail")
            ? { error: { status: 400, message: "refused by the fake" } }
            : undefined,
      });
      const group = await alice.call<{ groupId: string; runs: { id: string }[] }>("POST", "/v1/runs", {
        agents: ["builtin", "builtin"],
        prompt: "say hello",
        sandboxId: sandbox,
      });
      expect(group.status, JSON.stringify(group.body)).toBe(201);
      for (const r of group.body.runs) await waitForRun(alice, r.id);
      const failing = await alice.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "please fail",
        sandboxId: sandbox,
      });
      expect((await waitForRun(alice, failing.body.id)).state).toBe("failed");
      await expect.poll(() => hook.received.length, { timeout: 30_000 }).toBe(2);
      const bodies = hook.received.map(
        (r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> },
      );
      const groupEvent = bodies.find((b) => b.type === "group.finished");
      expect(groupEvent?.data).toMatchObject({ groupId: group.body.groupId, state: "succeeded" });
      expect(groupEvent?.data.runs).toHaveLength(2);
      expect(bodies.find((b) => b.type === "run.failed")?.data).toMatchObject({
        runId: failing.body.id,
        state: "failed",
      });
      // Nothing else arrives: a succeeded group is no group.failed, and each event is sent once.
      expect(bodies.map((b) => b.type).sort()).toEqual(["group.finished", "run.failed"]);
      for (const r of hook.received)
        expect(verify(created.body.secret, String(r.headers["polydev-signature"]), r.body)).toBe(true);
      await alice.call("DELETE", `/v1/webhooks/${created.body.id}`);
    } finally {
      fake.setScript(undefined);
      await hook.close();
    }
  }, 180_000);

  it("retries a failing receiver with growing delays until it answers 2xx", async () => {
    // 500, 503, then 200: three attempts, the retries 300 ms and then 1200 ms after a failure.
    const hook = await receiver((index) => [500, 503][index] ?? 200);
    try {
      const created = await alice.call<Created>("POST", "/v1/webhooks", {
        url: hook.url,
        events: ["run.finished"],
      });
      const run = await alice.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "say hello",
        sandboxId: sandbox,
      });
      await waitForRun(alice, run.body.id);
      await expect.poll(() => hook.received.length, { timeout: 30_000 }).toBe(3);
      const [first, second, third] = hook.received;
      if (!first || !second || !third) throw new Error("missing attempts");
      // Lower bounds only: each retry is due no earlier than its back-off after the failure.
      expect(second.at - first.at).toBeGreaterThanOrEqual(300);
      expect(third.at - second.at).toBeGreaterThanOrEqual(1200);
      // The same delivery each time, freshly signed.
      expect(new Set(hook.received.map((r) => r.headers["polydev-delivery"])).size).toBe(1);
      for (const r of hook.received)
        expect(verify(created.body.secret, String(r.headers["polydev-signature"]), r.body)).toBe(true);
      await expect
        .poll(
          async () =>
            (await alice.call<{ items: Delivery[] }>("GET", `/v1/webhooks/${created.body.id}/deliveries`))
              .body.items[0],
        )
        .toMatchObject({ state: "delivered", attempts: 3, lastStatus: 200, lastError: null });
      await alice.call("DELETE", `/v1/webhooks/${created.body.id}`);
    } finally {
      await hook.close();
    }
  }, 120_000);

  it("gives up after the last attempt and logs the receiver's answer", async () => {
    const hook = await receiver(() => 500);
    try {
      const created = await alice.call<Created>("POST", "/v1/webhooks", {
        url: hook.url,
        events: ["run.finished"],
      });
      const run = await alice.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "say hello",
        sandboxId: sandbox,
      });
      await waitForRun(alice, run.body.id);
      await expect
        .poll(
          async () =>
            (await alice.call<{ items: Delivery[] }>("GET", `/v1/webhooks/${created.body.id}/deliveries`))
              .body.items[0],
          { timeout: 30_000 },
        )
        .toMatchObject({
          state: "failed",
          attempts: 4,
          lastStatus: 500,
          lastError: "HTTP 500: receiver says no",
        });
      expect(hook.received.length).toBe(4);
      await alice.call("DELETE", `/v1/webhooks/${created.body.id}`);
    } finally {
      await hook.close();
    }
  }, 120_000);

  it("keeps a queued delivery across a restart and sends it once the receiver is up", async () => {
    // A port nothing listens on yet: the first attempt is refused.
    const placeholder = await receiver();
    const { port } = placeholder;
    await placeholder.close();
    const created = await alice.call<Created>("POST", "/v1/webhooks", {
      url: `http://127.0.0.1:${port}/hook`,
      events: ["run.finished"],
    });
    const run = await alice.call<{ id: string }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "say hello",
      sandboxId: sandbox,
    });
    await waitForRun(alice, run.body.id);
    await expect
      .poll(
        async () =>
          (await alice.call<{ items: Delivery[] }>("GET", `/v1/webhooks/${created.body.id}/deliveries`)).body
            .items[0]?.attempts,
        { timeout: 30_000 },
      )
      .toBeGreaterThanOrEqual(1);
    await t.restart();
    alice = t.api.withKey(alice.key);
    const received: Received[] = [];
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (c: Buffer) => chunks.push(c));
      request.on("end", () => {
        received.push({ at: Date.now(), headers: request.headers, body: Buffer.concat(chunks).toString() });
        response.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    try {
      await expect.poll(() => received.length, { timeout: 30_000 }).toBe(1);
      expect(JSON.parse(received[0]?.body ?? "{}")).toMatchObject({
        type: "run.finished",
        data: { runId: run.body.id },
      });
      await expect
        .poll(
          async () =>
            (await alice.call<{ items: Delivery[] }>("GET", `/v1/webhooks/${created.body.id}/deliveries`))
              .body.items[0]?.state,
        )
        .toBe("delivered");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 120_000);

  it("refuses bad URLs and events with a 400 saying what to fix", async () => {
    for (const body of [
      { url: "ftp://example.com/x" },
      { url: "not a url" },
      { url: "http://user:pw@example.com/" },
      { url: "https://example.com/", events: ["run.started"] },
      { url: "https://example.com/", events: [] },
      { url: "https://example.com/", extra: 1 },
    ]) {
      const response = await alice.call<{ error: { code: string; message: string } }>(
        "POST",
        "/v1/webhooks",
        body,
      );
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.code).toBe("invalid_request");
    }
    expect((await alice.call("DELETE", "/v1/webhooks/whk_nope")).status).toBe(404);
    expect((await alice.call("DELETE", "/v1/webhooks/nope")).status).toBe(400);
  });
});

describe("webhook destinations on the server host's private networks (the default)", () => {
  let t: TestServer;
  let alice: ApiClient;
  beforeAll(async () => {
    t = await startTestServer({ webhooks: { maxPerUser: 2 } });
    alice = await createUser(t.api, "alice");
  });
  afterAll(async () => {
    await t?.close();
  });

  it.each([
    "http://127.0.0.1:9/hook",
    "http://[::1]:9/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/hook",
    "http://192.168.1.1/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://localhost:9/hook",
  ])("refuses %s with 403 destination_refused", async (url) => {
    const response = await alice.call<{ error: { code: string; message: string } }>("POST", "/v1/webhooks", {
      url,
    });
    expect(response.status).toBe(403);
    expect(response.body.error.code).toBe("destination_refused");
    expect(response.body.error.message).toContain("POLYDEV_WEBHOOK_ALLOW_PRIVATE");
  });

  it("checks again at connection time, on the address it connects to (no DNS rebinding)", async () => {
    // A name that resolved somewhere public at registration and to loopback now must not connect.
    const hook = await receiver();
    try {
      const result = await sendWebhook({
        url: `http://localhost:${hook.port}/hook`,
        body: "{}",
        headers: {},
        dispatcher: webhookDispatcher(false),
        timeoutMs: 5_000,
        signal: new AbortController().signal,
      });
      expect(result.ok).toBe(false);
      expect(result.status).toBeNull();
      expect(result.error).toContain("may not be sent to localhost");
      expect(hook.received).toEqual([]);
      // The same request with private destinations allowed does arrive: the refusal was the check.
      const allowed = await sendWebhook({
        url: `http://localhost:${hook.port}/hook`,
        body: "{}",
        headers: {},
        dispatcher: webhookDispatcher(true),
        timeoutMs: 5_000,
        signal: new AbortController().signal,
      });
      expect(allowed).toMatchObject({ ok: true, status: 204 });
      expect(hook.received.length).toBe(1);
    } finally {
      await hook.close();
    }
  });

  it("does not follow a redirect (a receiver cannot bounce a delivery to another address)", async () => {
    const target = await receiver();
    const bouncer = createServer((_request, response) => {
      response.writeHead(307, { location: target.url });
      response.end();
    });
    await new Promise<void>((resolve) => bouncer.listen(0, "127.0.0.1", resolve));
    try {
      const result = await sendWebhook({
        url: `http://127.0.0.1:${(bouncer.address() as AddressInfo).port}/hook`,
        body: "{}",
        headers: {},
        dispatcher: webhookDispatcher(true),
        timeoutMs: 5_000,
        signal: new AbortController().signal,
      });
      expect(result).toMatchObject({ ok: false, status: 307 });
      expect(target.received).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => bouncer.close(() => resolve()));
      await target.close();
    }
  });

  it("limits the webhooks a user may register", async () => {
    const ok = await alice.call("POST", "/v1/webhooks", { url: "https://93.184.215.14/a" });
    expect(ok.status).toBe(201);
    expect((await alice.call("POST", "/v1/webhooks", { url: "https://93.184.215.14/b" })).status).toBe(201);
    const third = await alice.call<{ error: { code: string } }>("POST", "/v1/webhooks", {
      url: "https://93.184.215.14/c",
    });
    expect(third.status).toBe(429);
    expect(third.body.error.code).toBe("limit_exceeded");
  });
});

describe("webhook settings from the environment", () => {
  it("reads POLYDEV_WEBHOOK_* and refuses a value it cannot read", () => {
    expect(parseConfig(configFromEnv({})).webhooks).toMatchObject({
      allowPrivate: false,
      maxAttempts: 5,
      retryBaseMs: 45_000,
    });
    const set = parseConfig(
      configFromEnv({
        POLYDEV_WEBHOOK_ALLOW_PRIVATE: "1",
        POLYDEV_WEBHOOK_MAX_ATTEMPTS: "3",
        POLYDEV_WEBHOOK_RETRY_BASE_MS: "250",
      }),
    ).webhooks;
    expect(set).toMatchObject({ allowPrivate: true, maxAttempts: 3, retryBaseMs: 250 });
    expect(() => configFromEnv({ POLYDEV_WEBHOOK_ALLOW_PRIVATE: "yes please" })).toThrow(
      /POLYDEV_WEBHOOK_ALLOW_PRIVATE/,
    );
    expect(() => parseConfig(configFromEnv({ POLYDEV_WEBHOOK_MAX_ATTEMPTS: "0" }))).toThrow(
      /webhooks.maxAttempts/,
    );
  });
});
