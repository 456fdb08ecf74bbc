/**
 * A client following a run live must see every event: the stream reads "after the last seq it
 * sent", so events stored out of order (a later seq first) would silently go missing.
 */
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { startTestServer } from "./testing/harness.js";

let fake: FakeProviders;
let t: TestServer;
beforeAll(async () => {
  fake = await startFakeProviders();
  t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
  await t.api.call("PUT", "/v1/credentials/anthropic", { apiKey: "demo-anthropic-key" });
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

it("streams every event of a live built-in run, in order, with no gaps", async () => {
  const sandboxId = await t.api.createSandbox();
  for (let round = 0; round < 3; round++) {
    // Text streamed a word at a time around a tool call: many small events in quick succession.
    fake.setScript([
      {
        text: "Writing the greeting now.",
        toolCall: { tool: "write_file", arguments: { path: "g.txt", content: "hi" } },
      },
      { text: "All done: greeting.txt says hi from the dashboard." },
    ]);
    const run = await t.api.call<{ id: string }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "write g.txt",
      sandboxId,
    });
    expect(run.status).toBe(201);
    const live = await fetch(`${t.url}/v1/runs/${run.body.id}/events`, {
      headers: { authorization: `Bearer ${t.adminKey}` },
    });
    const ids = [...(await live.text()).matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids.length).toBeGreaterThan(10);
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    const replay = await fetch(`${t.url}/v1/runs/${run.body.id}/events`, {
      headers: { authorization: `Bearer ${t.adminKey}` },
    });
    expect([...(await replay.text()).matchAll(/^id: (\d+)$/gm)].length).toBe(ids.length);
  }
  fake.setScript(undefined);
});
