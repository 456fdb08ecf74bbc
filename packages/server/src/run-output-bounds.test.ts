/**
 * What a run's agent prints is sandbox-controlled: the server holds at most one bounded line of
 * it at a time and stores at most a bounded amount per run. The "CLI" here is the sandbox's own
 * `claude` on its PATH (a user may put anything there): a flood of valid events and one line that
 * never ends.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { readSse, startTestServer } from "./testing/harness.js";

const FLOOD = [
  "#!/bin/sh",
  // 40 MiB of valid stream-json text deltas, 1 KiB each...
  `python3 -c "
import json, sys
line = json.dumps({'type': 'stream_event', 'event': {'type': 'content_block_delta', 'delta': {'type': 'text_delta', 'text': 'x' * 900}}})
for _ in range(40 * 1024): sys.stdout.write(line + chr(10))
sys.stdout.flush()
sys.stdout.write('y' * (64 * 1024 * 1024))
sys.stdout.write(chr(10))
"`,
].join("\n");

describe("a run's output is bounded on the server", () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer();
    // A run starts only with its provider's credential; this "claude" never uses it.
    await t.api.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-output-bounds-key" });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("stores at most its limit of a flood of events, holds no unbounded line, and still ends", async () => {
    const sandbox = await t.api.createSandbox({
      memoryMb: 1024,
      env: { PATH: "/home/user/bin:/usr/local/bin:/usr/bin:/bin" },
    });
    await t.api.exec(sandbox, "mkdir -p bin");
    const put = await fetch(`${t.url}/v1/sandboxes/${sandbox}/files/content?path=bin/claude`, {
      method: "PUT",
      headers: { authorization: `Bearer ${t.api.key}` },
      body: FLOOD,
    });
    expect(put.status).toBe(201);
    await t.api.exec(sandbox, "chmod +x bin/claude");
    const before = process.memoryUsage().rss;
    const started = await t.api.call<{ id: string }>("POST", "/v1/runs", {
      agent: "claude",
      prompt: "flood",
      sandboxId: sandbox,
    });
    expect(started.status).toBe(201);
    let state = "";
    for (let i = 0; i < 600 && !["succeeded", "failed", "cancelled", "timed_out"].includes(state); i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      state = String((await t.api.call<{ state: string }>("GET", `/v1/runs/${started.body.id}`)).body.state);
    }
    expect(["succeeded", "failed"]).toContain(state);
    const grownMiB = (process.memoryUsage().rss - before) / 1024 / 1024;
    const response = await fetch(`${t.url}/v1/runs/${started.body.id}/events`, {
      headers: { authorization: `Bearer ${t.api.key}` },
    });
    const events = await readSse(response);
    const storedBytes = events.reduce((sum, event) => sum + JSON.stringify(event.data).length, 0);
    expect(storedBytes).toBeLessThan(40 * 1024 * 1024);
    expect(
      events.some((e) => JSON.stringify(e.data).includes("output reached its limit")),
      "the run says its output was cut",
    ).toBe(true);
    // A sanity bound only (RSS is noisy): boundedLines.test.ts pins the line bound exactly.
    expect(grownMiB).toBeLessThan(400);
  }, 180_000);
});
