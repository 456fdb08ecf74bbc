/**
 * Users' own API keys and the admin audit log, against a real server and a real SQLite file:
 * the secret is shown once and never again (not in lists, not in the audit log, not in the
 * database), expired and revoked keys answer 401, one user cannot touch another's keys, and the
 * audit log pages, filters and stays bounded.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "@polydev/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

class ManualClock implements Clock {
  #now = Date.now();
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}

interface KeyView {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

interface AuditView {
  id: number;
  action: string;
  outcome: string;
  actorId: string | null;
  actorName: string | null;
  targetId: string | null;
  details: Record<string, unknown>;
}

const clock = new ManualClock();
let t: TestServer;
let alice: ApiClient;
let bob: ApiClient;

beforeAll(async () => {
  t = await startTestServer({ auditMaxEvents: 100 }, { clock });
  alice = await createUser(t.api, "alice");
  bob = await createUser(t.api, "bob");
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe("a user's own API keys", () => {
  it("creates a key whose secret is shown once, lists it without the secret, and revokes it", async () => {
    // Keys list oldest first; the manual clock must move for "first key" to be older.
    clock.advance(1000);
    const created = await alice.call<{ key: KeyView; apiKey: string }>("POST", "/v1/me/keys", {
      name: "laptop",
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("cache-control")).toBe("no-store");
    const { key, apiKey } = created.body;
    expect(apiKey).toMatch(/^pdk_/);
    expect(key).toMatchObject({
      name: "laptop",
      expiresAt: null,
      lastUsedAt: null,
      prefix: apiKey.slice(0, 10),
    });

    const withNewKey = alice.withKey(apiKey);
    expect((await withNewKey.call<{ name: string }>("GET", "/v1/me")).body.name).toBe("alice");

    const list = await alice.call<{ items: KeyView[] }>("GET", "/v1/me/keys");
    expect(list.body.items.map((k) => k.name)).toEqual(["first key", "laptop"]);
    expect(list.body.items[1]?.lastUsedAt).not.toBeNull();
    expect(JSON.stringify(list.body)).not.toContain(apiKey.slice(10));
    // The database keeps only a hash.
    const database = await readFile(join(t.dataDir, "polydev.db")).catch(() => Buffer.alloc(0));
    expect(database.length).toBeGreaterThan(0);
    expect(database.includes(apiKey)).toBe(false);

    // Bob sees none of Alice's keys and cannot revoke them.
    const bobs = await bob.call<{ items: KeyView[] }>("GET", "/v1/me/keys");
    expect(bobs.body.items.map((k) => k.id)).not.toContain(key.id);
    const foreign = await bob.call<{ error: { code: string } }>("DELETE", `/v1/me/keys/${key.id}`);
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe("not_found");
    expect((await withNewKey.call("GET", "/v1/me")).status).toBe(200);

    expect((await alice.call("DELETE", `/v1/me/keys/${key.id}`)).status).toBe(204);
    const revoked = await withNewKey.call<{ error: { code: string; message: string } }>("GET", "/v1/me");
    expect(revoked.status).toBe(401);
    expect(revoked.body.error).toMatchObject({
      code: "unauthorized",
      message: expect.stringMatching(/revoked/),
    });
    expect((await alice.call("DELETE", `/v1/me/keys/${key.id}`)).status).toBe(404);
  });

  it("stops an expiring key at its expiry, for the API and for dashboard sign-in", async () => {
    const expiresAt = new Date(clock.now() + 60 * 60_000).toISOString();
    const created = await alice.call<{ key: KeyView; apiKey: string }>("POST", "/v1/me/keys", {
      name: "ci",
      expiresAt,
    });
    expect(created.status).toBe(201);
    expect(created.body.key.expiresAt).toBe(expiresAt);
    const ci = alice.withKey(created.body.apiKey);
    expect((await ci.call("GET", "/v1/me")).status).toBe(200);
    clock.advance(60 * 60_000 + 1);
    const expired = await ci.call<{ error: { code: string; message: string } }>("GET", "/v1/me");
    expect(expired.status).toBe(401);
    expect(expired.body.error.message).toMatch(/expired at/);
    const signIn = await fetch(`${t.url}/v1/auth/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apiKey: created.body.apiKey }),
    });
    expect(signIn.status).toBe(401);
  });

  it("refuses bad input with 400s that say what to fix, and bounds how many keys one user has", async () => {
    for (const body of [
      {},
      { name: "" },
      { name: "x", expiresAt: "tomorrow" },
      { name: "x", expiresAt: new Date(clock.now() - 1000).toISOString() },
      { name: "x", expiresAt: "2999-01-01T00:00:00Z" },
      { name: "x", secret: "mine" },
    ]) {
      const answer = await bob.call<{ error: { code: string } }>("POST", "/v1/me/keys", body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error.code).toBe("invalid_request");
    }
    const carol = await createUser(t.api, "carol");
    let last = 201;
    for (let i = 0; i < 60 && last === 201; i += 1) {
      last = (await carol.call("POST", "/v1/me/keys", { name: `k${i}` })).status;
    }
    expect(last).toBe(429);
    expect((await carol.call<{ items: unknown[] }>("GET", "/v1/me/keys")).body.items).toHaveLength(50);
  });
});

describe("the audit log", () => {
  it("records sign-ins, key changes, password changes and user creation, without secrets", async () => {
    const secretPassword = "a-password-nobody-guesses";
    await fetch(`${t.url}/v1/auth/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "alice", password: secretPassword }),
    });
    expect((await alice.call("PUT", "/v1/me/password", { password: secretPassword })).status).toBe(204);
    const signedIn = await fetch(`${t.url}/v1/auth/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "alice", password: secretPassword }),
    });
    expect(signedIn.status).toBe(200);
    const created = await alice.call<{ apiKey: string }>("POST", "/v1/me/keys", { name: "audited" });

    const all = await t.api.call<{ items: AuditView[]; nextCursor: string | null }>(
      "GET",
      "/v1/admin/audit?limit=500",
    );
    expect(all.status).toBe(200);
    const actions = all.body.items.map((e) => `${e.action}:${e.outcome}`);
    for (const expected of [
      "user.create:success",
      "api_key.create:success",
      "api_key.revoke:success",
      "sign_in:failure",
      "sign_in:success",
      "password.change:success",
    ]) {
      expect(actions).toContain(expected);
    }
    const failure = all.body.items.find((e) => e.action === "sign_in" && e.outcome === "failure");
    expect(failure).toMatchObject({ actorName: "alice", actorId: null, details: { method: "password" } });
    const text = JSON.stringify(all.body);
    expect(text).not.toContain(secretPassword);
    expect(text).not.toContain(created.body.apiKey);
    expect(text).not.toContain(t.adminKey);
  });

  it("pages newest first by cursor and filters by action, outcome and actor", async () => {
    const first = await t.api.call<{ items: AuditView[]; nextCursor: string | null }>(
      "GET",
      "/v1/admin/audit?limit=2",
    );
    expect(first.body.items).toHaveLength(2);
    const second = await t.api.call<{ items: AuditView[] }>(
      "GET",
      `/v1/admin/audit?limit=2&cursor=${first.body.nextCursor}`,
    );
    expect(second.body.items[0]?.id).toBeLessThan(first.body.items[1]?.id ?? 0);
    const me = await alice.call<{ id: string }>("GET", "/v1/me");
    const mine = await t.api.call<{ items: AuditView[] }>(
      "GET",
      `/v1/admin/audit?action=api_key.create&actorId=${me.body.id}`,
    );
    expect(mine.body.items.length).toBeGreaterThan(0);
    expect(mine.body.items.every((e) => e.action === "api_key.create" && e.actorId === me.body.id)).toBe(
      true,
    );
    const failures = await t.api.call<{ items: AuditView[] }>("GET", "/v1/admin/audit?outcome=failure");
    expect(failures.body.items.every((e) => e.outcome === "failure")).toBe(true);
    const future = await t.api.call<{ items: AuditView[] }>(
      "GET",
      `/v1/admin/audit?since=${new Date(clock.now() + 86_400_000).toISOString()}`,
    );
    expect(future.body.items).toEqual([]);
  });

  it("is for admins only, and refuses bad filters with 400", async () => {
    const refused = await alice.call<{ error: { code: string } }>("GET", "/v1/admin/audit");
    expect(refused.status).toBe(403);
    for (const query of ["cursor=abc", "action=everything", "limit=0", "since=yesterday", "extra=1"]) {
      const answer = await t.api.call<{ error: { code: string } }>("GET", `/v1/admin/audit?${query}`);
      expect(answer.status, query).toBe(400);
      expect(answer.body.error.code).toBe("invalid_request");
    }
  });

  it("keeps at most the configured number of events (pruned at start and as it grows)", async () => {
    for (let i = 0; i < 150; i += 1) {
      await t.server.store.audit.append({
        at: clock.now(),
        action: "sign_in",
        outcome: "failure",
        actorId: null,
        actorName: `flood-${i}`,
        targetType: null,
        targetId: null,
        ip: null,
        details: {},
      });
    }
    await t.restart();
    const page = await t.api.call<{ items: AuditView[] }>("GET", "/v1/admin/audit?limit=500");
    expect(page.body.items.length).toBeLessThanOrEqual(100);
    expect(page.body.items[0]?.actorName).toBe("flood-149");
  });
});
