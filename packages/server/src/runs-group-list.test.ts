/**
 * `GET /v1/runs?groupId=`: how the dashboard's compare page finds a group's agents. A real server,
 * a real namespace sandbox and the built-in agent against the fake providers start a real group;
 * the filter answers exactly its runs, and nothing of another user's.
 */
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

interface Run {
  id: string;
  groupId: string | null;
  state: string;
}
interface RunPage {
  items: Run[];
  nextCursor: string | null;
}

let fake: FakeProviders;
let t: TestServer;
let alice: ApiClient;
let sandbox: string;

describe("listing a group's runs", () => {
  beforeAll(async () => {
    fake = await startFakeProviders();
    fake.setScript(() => ({ text: "Nothing to do." }));
    t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
    alice = await createUser(t.api, "alice");
    await alice.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
    sandbox = await alice.createSandbox();
    const made = await alice.exec(sandbox, ["/bin/sh", "-c", "mkdir -p app && echo one > app/a.txt"]);
    expect((made.body as { exitCode: number }).exitCode).toBe(0);
    const project = await alice.call("POST", `/v1/sandboxes/${sandbox}/projects`, { path: "app" });
    expect(project.status, JSON.stringify(project.body)).toBe(201);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  it("answers exactly the group's runs, pages them, and nothing to another user", async () => {
    const group = await alice.call<{ groupId: string; runs: Run[] }>("POST", "/v1/runs", {
      agents: ["builtin", "builtin"],
      prompt: "look around",
      sandboxId: sandbox,
    });
    expect(group.status, JSON.stringify(group.body)).toBe(201);
    const solo = await alice.call<Run>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "alone",
      sandboxId: sandbox,
    });
    expect(solo.status, JSON.stringify(solo.body)).toBe(201);
    const groupIds = group.body.runs.map((r) => r.id).sort();

    const listed = await alice.call<RunPage>("GET", `/v1/runs?groupId=${group.body.groupId}`);
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((r) => r.id).sort()).toEqual(groupIds);
    expect(listed.body.items.every((r) => r.groupId === group.body.groupId)).toBe(true);
    // Without the filter the solo run is there too.
    const all = await alice.call<RunPage>("GET", "/v1/runs");
    expect(all.body.items.map((r) => r.id)).toContain(solo.body.id);

    const first = await alice.call<RunPage>("GET", `/v1/runs?groupId=${group.body.groupId}&limit=1`);
    expect(first.body.items).toHaveLength(1);
    expect(first.body.nextCursor).not.toBeNull();
    const second = await alice.call<RunPage>(
      "GET",
      `/v1/runs?groupId=${group.body.groupId}&limit=1&cursor=${first.body.nextCursor}`,
    );
    expect([...first.body.items, ...second.body.items].map((r) => r.id).sort()).toEqual(groupIds);

    // Another user's view of the same group id: empty, not a leak and not an error.
    const bob = await createUser(t.api, "bob");
    const foreign = await bob.call<RunPage>("GET", `/v1/runs?groupId=${group.body.groupId}`);
    expect(foreign.status).toBe(200);
    expect(foreign.body.items).toEqual([]);
  });

  it("refuses a malformed group id with a 400 that says what an id looks like", async () => {
    const refused = await alice.call<{ error: { code: string; message: string } }>(
      "GET",
      "/v1/runs?groupId=not%20an%20id",
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("invalid_request");
    expect(refused.body.error.message).toContain("groupId");
  });
});
