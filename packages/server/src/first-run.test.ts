/**
 * What a newcomer meets on a first run: the dashboard's default agent (the built-in one) acting
 * through a real tool call against the fake providers' default script, and a clear refusal,
 * before anything starts, when the agent's provider has no credential.
 */
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, readSse, startTestServer } from "./testing/harness.js";

let fake: FakeProviders;
let t: TestServer;
let alice: ApiClient;
let sandbox: string;

interface Run {
  id: string;
  state: string;
  finalText: string | null;
  exitReason: string | null;
}

async function waitForEnd(user: ApiClient, id: string, timeoutMs = 60_000): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = (await user.call<Run>("GET", `/v1/runs/${id}`)).body;
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.state)) return run;
    if (Date.now() > deadline) throw new Error(`run still ${run.state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  fake = await startFakeProviders();
  t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
  alice = await createUser(t.api, "alice");
  for (const provider of ["anthropic", "openai", "gemini"]) {
    await alice.call("PUT", `/v1/credentials/${provider}`, { apiKey: `demo-${provider}-key` });
  }
  sandbox = await alice.createSandbox();
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

describe("the built-in agent against the fake providers' default script", () => {
  it.each([
    ["anthropic", undefined],
    ["openai", "gpt-test"],
    ["gemini", "gemini-2.5-flash"],
  ])("(%s) runs a command through its run_command tool and answers", async (provider, model) => {
    const name = `first-${provider}.txt`;
    const started = await alice.call<Run>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: `create file ${name}`,
      sandboxId: sandbox,
      ...(model ? { model } : {}),
    });
    expect(started.status).toBe(201);
    const run = await waitForEnd(alice, started.body.id);
    expect(run.state, run.exitReason ?? "").toBe("succeeded");
    expect(run.finalText).toBe("Done.");
    const events = await readSse(
      await fetch(`${t.url}/v1/runs/${run.id}/events`, { headers: { authorization: `Bearer ${alice.key}` } }),
    );
    const call = events.find((e) => e.event === "tool_call")?.data as { name?: string } | undefined;
    expect(call?.name).toBe("run_command");
    expect(events.some((e) => e.event === "tool_result")).toBe(true);
    const file = await alice.call("GET", `/v1/sandboxes/${sandbox}/files/content?path=${name}`);
    expect(String(file.body)).toBe("hello from polydev\n");
    expect(fake.requests.at(-1)?.provider).toBe(provider);
  });

  it("tells a newcomer which prompt makes it act", async () => {
    const started = await alice.call<Run>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "Add a README that explains how to run the tests",
      sandboxId: sandbox,
    });
    const run = await waitForEnd(alice, started.body.id);
    expect(run.finalText).toContain('"create file hello.txt"');
  });
});

describe("a run whose provider has no credential", () => {
  it.each([
    ["claude", "anthropic"],
    ["codex", "openai"],
    ["gemini", "gemini"],
  ])("%s is refused with credential_missing naming %s and how to add it", async (agent, provider) => {
    const bob = await createUser(t.api, `bob-${agent}`);
    const refused = await bob.call<{ error: { code: string; message: string; details: unknown } }>(
      "POST",
      "/v1/runs",
      { agent, prompt: "say hello" },
    );
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe("credential_missing");
    expect(refused.body.error.message).toContain(`polydev creds add ${provider}`);
    expect(refused.body.error.message).toContain(`PUT /v1/credentials/${provider}`);
    expect(refused.body.error.message).toContain(`polydev creds login ${agent}`);
    expect(refused.body.error.details).toMatchObject({ agent, providers: [provider] });
    // Nothing was started: no run, and no default sandbox made for it.
    expect((await bob.call<{ items: unknown[] }>("GET", "/v1/runs")).body.items).toEqual([]);
    expect((await bob.call<{ items: unknown[] }>("GET", "/v1/sandboxes")).body.items).toEqual([]);
    // Someone else's sandbox stays a 404, credential or not.
    const foreign = await bob.call("POST", "/v1/runs", { agent, prompt: "say hello", sandboxId: sandbox });
    expect(foreign.status).toBe(404);
  });

  it("refuses the built-in agent without any credential, and a group when one agent's is missing", async () => {
    const carol = await createUser(t.api, "carol");
    const none = await carol.call<{ error: { code: string; message: string } }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "say hello",
    });
    expect(none.status).toBe(422);
    expect(none.body.error.code).toBe("credential_missing");
    expect(none.body.error.message).toContain("anthropic, openai or gemini");
    await carol.call("PUT", "/v1/credentials/anthropic", { apiKey: "demo-anthropic-key" });
    const group = await carol.call<{ error: { code: string; details: unknown } }>("POST", "/v1/runs", {
      agents: ["builtin", "codex"],
      prompt: "say hello",
    });
    expect(group.status).toBe(422);
    expect(group.body.error.details).toMatchObject({ agent: "codex", providers: ["openai"] });
    expect((await carol.call<{ items: unknown[] }>("GET", "/v1/runs")).body.items).toEqual([]);
  });
});
