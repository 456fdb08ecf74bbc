/**
 * GET …/processes/:pid/output at its edges: offsets beyond what a byte count can be, and a
 * follow of a process that prints nothing (its status line must not wait for a first byte).
 * Faults during a follow are in fault-injection.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { within } from "./testing/child-server.js";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

let t: TestServer;
let api: ApiClient;
let sandbox: string;
let talker: string;

beforeAll(async () => {
  t = await startTestServer();
  api = await createUser(t.api, "output-user");
  sandbox = await api.createSandbox();
  talker = (
    await api.call<{ id: string }>("POST", `/v1/sandboxes/${sandbox}/processes`, { cmd: "echo hello" })
  ).body.id;
});
afterAll(async () => {
  await t?.close();
});

describe("process output offsets", () => {
  it.each([String(Number.MAX_SAFE_INTEGER + 2), "1e30", "1e400", "9".repeat(400), "-1", "1.5", "abc"])(
    "answers 400 for offset=%s",
    async (offset) => {
      const response = await api.call<{ error: { code: string; message: string } }>(
        "GET",
        `/v1/sandboxes/${sandbox}/processes/${talker}/output?offset=${offset}`,
      );
      expect(response.status, JSON.stringify(response.body)).toBe(400);
      expect(response.body.error.code).toBe("invalid_request");
      // What to fix, in words: not a validator's "Too big: expected int to be <=…".
      expect(response.body.error.message).toMatch(/offset must be/);
    },
  );

  it("takes offsets up to 2^53 - 1, and says so past it", async () => {
    const far = await api.call(
      "GET",
      `/v1/sandboxes/${sandbox}/processes/${talker}/output?offset=${Number.MAX_SAFE_INTEGER}`,
    );
    expect(far.status).toBe(200);
    expect(far.body ?? "").toBe("");
    const all = await api.call("GET", `/v1/sandboxes/${sandbox}/processes/${talker}/output`);
    expect(all.body).toBe("hello\n");
    const past = await api.call<{ error: { message: string } }>(
      "GET",
      `/v1/sandboxes/${sandbox}/processes/${talker}/output?offset=${Number.MAX_SAFE_INTEGER + 2}`,
    );
    expect(past.body.error.message).toContain(`offset must be at most ${Number.MAX_SAFE_INTEGER}`);
  });
});

describe("following a silent process", () => {
  it("sends the status line at once, then ends (not 500) when the sandbox is destroyed", async () => {
    const own = await api.createSandbox();
    const pid = (
      await api.call<{ id: string }>("POST", `/v1/sandboxes/${own}/processes`, { cmd: ["sleep", "600"] })
    ).body.id;
    const response = await within(
      fetch(`${t.url}/v1/sandboxes/${own}/processes/${pid}/output?follow=true`, {
        headers: { authorization: `Bearer ${api.key}` },
      }),
      10_000,
      "the status line of a silent follow",
    );
    expect(response.status).toBe(200);
    expect((await api.call("DELETE", `/v1/sandboxes/${own}`)).status).toBe(200);
    const body = await within(
      response.text().then(
        (text) => ({ ended: "complete", text }),
        (error: unknown) => ({ ended: "cut short", text: String(error) }),
      ),
      10_000,
      "the follow to end",
    );
    // Bytes cannot say "failed": a stream whose sandbox went away ends without its last chunk.
    expect(body.ended).toBe("cut short");
  });
});
