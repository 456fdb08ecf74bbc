import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, readSse, startTestServer } from "./testing/harness.js";
import { GOOD_CODE, HUGE_FILE_CODE, STAND_IN_LOGIN_FLOWS } from "./testing/stand-in-logins.js";

let t: TestServer;
let alice: ApiClient;
let sandbox: string;

beforeAll(async () => {
  t = await startTestServer({}, { loginFlows: STAND_IN_LOGIN_FLOWS });
  alice = await createUser(t.api, "alice");
  sandbox = await alice.createSandbox();
});
afterAll(async () => {
  await t?.close();
});

interface Login {
  id: string;
  state: string;
  url: string | null;
  reason: string | null;
  finish: string;
}

async function start(provider: string, sandboxId = sandbox) {
  return alice.call<Login>("POST", "/v1/logins", { provider, sandboxId });
}

describe("provider logins with the CLI's own flow", () => {
  it("captures the URL, takes the code, stores the credential and removes the CLI's file", async () => {
    const started = await start("claude");
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({ state: "awaiting_user", finish: "code" });
    expect(started.body.url).toMatch(/^https:\/\/claude\.ai\/oauth\/authorize\?/);

    const events = fetch(`${t.url}/v1/logins/${started.body.id}/events`, {
      headers: { authorization: `Bearer ${alice.key}` },
    }).then(readSse);
    const done = await alice.call<Login>("POST", `/v1/logins/${started.body.id}/code`, { code: GOOD_CODE });
    expect(done.body).toMatchObject({ state: "completed", reason: null });
    const states = (await events).map((e) => (e.data as Login).state);
    expect(states).toEqual(["awaiting_user", "completing", "completed"]);

    const creds = await alice.call<{ items: { provider: string; kind: string }[] }>("GET", "/v1/credentials");
    expect(creds.body.items).toEqual([expect.objectContaining({ provider: "anthropic", kind: "oauth" })]);
    const audit = await t.api.call<{ items: { actorName: string; details: Record<string, unknown> }[] }>(
      "GET",
      "/v1/admin/audit?action=credential.add",
    );
    expect(audit.body.items[0]).toMatchObject({
      actorName: "alice",
      details: { provider: "anthropic", kind: "oauth", via: "login" },
    });
    const leftover = await alice.call(
      "GET",
      `/v1/sandboxes/${sandbox}/files/stat?path=.claude/.credentials.json`,
    );
    expect(leftover.status).toBe(404);
    const again = await alice.call<{ error: { code: string } }>(
      "POST",
      `/v1/logins/${started.body.id}/code`,
      {
        code: GOOD_CODE,
      },
    );
    expect(again.status).toBe(409);
  });

  it("refuses a credential file far larger than any real one, without reading it whole", async () => {
    const started = await start("claude");
    const done = await alice.call<Login>("POST", `/v1/logins/${started.body.id}/code`, {
      code: HUGE_FILE_CODE,
    });
    expect(done.body.state).toBe("failed");
    expect(done.body.reason).toContain("larger than");
    const creds = await alice.call<{ items: { provider: string; kind: string }[] }>("GET", "/v1/credentials");
    expect(creds.body.items.filter((c) => c.kind === "oauth" && c.provider === "anthropic")).toHaveLength(1);
  });

  it("fails at once with the provider's reason on a wrong code, while the CLI waits for another", async () => {
    const started = await start("claude");
    const done = await alice.call<Login>("POST", `/v1/logins/${started.body.id}/code`, { code: "wrong" });
    // Not timed_out: the CLI never exits on its own here, the refusal line ends the login.
    expect(done.body.state).toBe("failed");
    expect(done.body.reason).toBe(
      "claude refused the code: Invalid authorization code. Start a new login and try again.",
    );
  });

  it("relays a localhost callback into the sandbox for Codex-style logins, and refuses other URLs", async () => {
    const started = await start("codex");
    expect(started.body).toMatchObject({ state: "awaiting_user", finish: "callback" });
    const evil = await alice.call("POST", `/v1/logins/${started.body.id}/code`, {
      callbackUrl: "https://evil.example/x",
    });
    expect(evil.status).toBe(400);
    const done = await alice.call<Login>("POST", `/v1/logins/${started.body.id}/code`, {
      callbackUrl: `http://localhost:1455/auth/callback?code=${GOOD_CODE}&state=s`,
    });
    expect(done.body.state).toBe("completed");
    const creds = await alice.call<{ items: { provider: string }[] }>("GET", "/v1/credentials");
    expect(creds.body.items.map((c) => c.provider)).toContain("openai");
  });

  it("allows one login per provider at a time, and cancels cleanly", async () => {
    const first = await start("claude");
    const second = await start("claude");
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ error: { code: "conflict" } });
    // Refused with no sandbox named: the sandbox made for it does not stay behind.
    const before = await alice.call<{ items: { id: string; state: string }[] }>("GET", "/v1/sandboxes");
    const ownSecond = await alice.call("POST", "/v1/logins", { provider: "claude" });
    expect(ownSecond.status).toBe(409);
    const after = await alice.call<{ items: { id: string; state: string }[] }>("GET", "/v1/sandboxes");
    const live = (items: { state: string }[]) => items.filter((s) => s.state !== "destroyed").length;
    expect(live(after.body.items)).toBe(live(before.body.items));
    const cancelled = await alice.call<Login>("DELETE", `/v1/logins/${first.body.id}`);
    expect(cancelled.body.state).toBe("cancelled");
    const late = await alice.call("POST", `/v1/logins/${first.body.id}/code`, { code: GOOD_CODE });
    expect(late.status).toBe(409);
  });

  it("fails a login whose sandbox is destroyed midway, and hides logins from other users", async () => {
    const doomed = await alice.createSandbox();
    const started = await start("claude", doomed);
    await alice.call("DELETE", `/v1/sandboxes/${doomed}`);
    const after = await alice.call<Login>("GET", `/v1/logins/${started.body.id}`);
    expect(after.body.state).toBe("failed");
    expect(after.body.reason).toContain("destroyed");
    const bob = await createUser(t.api, "bob");
    expect((await bob.call("GET", `/v1/logins/${started.body.id}`)).status).toBe(404);
  });

  it("ends the logins a restart lost as failed, removes their own sandboxes, and lists logins from their rows", async () => {
    const onOwn = await start("claude");
    expect(onOwn.body.state).toBe("awaiting_user");
    // No sandbox named: the login makes its own, which must not outlive it.
    const ownSandbox = await alice.call<Login & { sandboxId: string }>("POST", "/v1/logins", {
      provider: "codex",
    });
    expect(ownSandbox.status).toBe(201);
    await t.restart();
    alice = t.api.withKey(alice.key);
    const until = Date.now() + 30_000;
    let after = await alice.call<Login>("GET", `/v1/logins/${onOwn.body.id}`);
    while (after.body.state === "awaiting_user" && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      after = await alice.call<Login>("GET", `/v1/logins/${onOwn.body.id}`);
    }
    expect(after.body).toMatchObject({ state: "failed", url: null });
    expect(after.body.reason).toContain("restarted");
    let gone = await alice.call<{ state: string }>("GET", `/v1/sandboxes/${ownSandbox.body.sandboxId}`);
    while (gone.body.state !== "destroyed" && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      gone = await alice.call<{ state: string }>("GET", `/v1/sandboxes/${ownSandbox.body.sandboxId}`);
    }
    expect(gone.body.state).toBe("destroyed");
    // The sandbox the user named stays.
    expect((await alice.call<{ state: string }>("GET", `/v1/sandboxes/${sandbox}`)).body.state).toBe(
      "running",
    );
    // Its row no longer holds the provider: a new login starts, and the list has both.
    const fresh = await start("claude");
    expect(fresh.status).toBe(201);
    const list = await alice.call<{ items: Login[] }>("GET", "/v1/logins");
    expect(list.body.items[0]).toMatchObject({ id: fresh.body.id, state: "awaiting_user" });
    expect(list.body.items[0]?.url).toMatch(/^https:/);
    expect(list.body.items.find((l) => l.id === onOwn.body.id)).toMatchObject({ state: "failed" });
    // The events of an ended login: its last state, then the stream ends.
    const events = await fetch(`${t.url}/v1/logins/${onOwn.body.id}/events`, {
      headers: { authorization: `Bearer ${alice.key}` },
    }).then(readSse);
    expect(events.map((e) => (e.data as Login).state)).toEqual(["failed"]);
    const jobs = await t.api.call<{ items: { job: string; outcome: string }[] }>("GET", "/v1/admin/jobs");
    expect(jobs.body.items.find((j) => j.job === "stale-logins")).toMatchObject({ outcome: "succeeded" });
    await alice.call("DELETE", `/v1/logins/${fresh.body.id}`);
  });

  it("rejects bad input with 400", async () => {
    expect((await alice.call("POST", "/v1/logins", { provider: "chatgpt" })).status).toBe(400);
    const started = await start("claude");
    const both = await alice.call("POST", `/v1/logins/${started.body.id}/code`, {
      code: "a",
      callbackUrl: "http://localhost/",
    });
    expect(both.status).toBe(400);
    await alice.call("DELETE", `/v1/logins/${started.body.id}`);
  });
});
