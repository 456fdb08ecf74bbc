import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { TOOL_HINT } from "./default-script.js";
import { startFakeProviders } from "./server.js";
import { digString, postJson, postSse } from "./testing/http-client.js";
import { parseSseEvents } from "./testing/sse-events.js";
import type { FakeProviders, FakeRequestView } from "./types.js";

let fake: FakeProviders;
beforeAll(async () => {
  fake = await startFakeProviders();
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.setScript(undefined);
  fake.requests.length = 0;
});

const anthropic = (url: string) => `${url}/v1/messages`;
const anthropicBody = (text: string) => ({
  model: "claude-test",
  stream: true,
  messages: [{ role: "user", content: text }],
  tools: [{ name: "Bash", input_schema: { type: "object" } }],
});
const openaiBody = (text: string) => ({
  model: "gpt-test",
  stream: true,
  input: [{ type: "message", role: "user", content: [{ type: "input_text", text }] }],
  tools: [{ type: "function", name: "exec_command" }],
});

function anthropicText(data: Record<string, unknown>[]): string {
  return data
    .filter((event) => event.type === "content_block_delta")
    .map((event) => {
      const delta = event.delta;
      return typeof delta === "object" && delta !== null && "text" in delta ? String(delta.text) : "";
    })
    .join("");
}

describe("fake provider server", () => {
  it("records every request with its provider, path, query, parsed body and auth headers as given", async () => {
    await postSse(`${fake.url}/v1/messages?beta=true`, anthropicBody("hi"), {
      "x-api-key": "pdg_placeholder_a",
    });
    await postSse(`${fake.url}/v1/responses`, openaiBody("hi"), {
      authorization: "Bearer pdg_placeholder_b",
    });
    await postSse(
      `${fake.url}/v1beta/models/gemini-test:streamGenerateContent?alt=sse`,
      { contents: [{ role: "user", parts: [{ text: "hi" }] }] },
      { "x-goog-api-key": "pdg_placeholder_c" },
    );
    await fetch(`${fake.url}/nowhere`);

    expect(fake.requests).toMatchObject([
      {
        provider: "anthropic",
        method: "POST",
        path: "/v1/messages",
        query: { beta: "true" },
        headers: { "x-api-key": "pdg_placeholder_a" },
        body: { model: "claude-test", messages: [{ role: "user", content: "hi" }] },
        clientDisconnected: false,
      },
      { provider: "openai", path: "/v1/responses", headers: { authorization: "Bearer pdg_placeholder_b" } },
      {
        provider: "gemini",
        path: "/v1beta/models/gemini-test:streamGenerateContent",
        query: { alt: "sse" },
        headers: { "x-goog-api-key": "pdg_placeholder_c" },
      },
      { provider: "unknown", method: "GET", path: "/nowhere", body: undefined },
    ]);
    expect(fake.requests[0]?.receivedAt).toBeInstanceOf(Date);
  });

  it("answers 404 with a message naming the unknown route", async () => {
    const reply = await postJson(`${fake.url}/v2/whatever`, {});
    expect(reply.status).toBe(404);
    expect(digString(reply.json, "error", "message")).toContain("POST /v2/whatever");
  });

  it("waits delayMs before each chunk", async () => {
    fake.setScript([{ text: "one two three", delayMs: 60 }]);
    const started = performance.now();
    const { data } = await postSse(anthropic(fake.url), anthropicBody("hi"));
    // A lower bound only: three pauses must have happened; an upper bound would be a flaky timing test.
    expect(performance.now() - started).toBeGreaterThanOrEqual(3 * 60 - 5);
    expect(anthropicText(data)).toBe("one two three");
  });

  it("stops streaming and records the disconnect when the client cancels mid-stream", async () => {
    fake.setScript([{ text: "a b c d e f g h i j", delayMs: 200 }]);
    const controller = new AbortController();
    const response = await fetch(anthropic(fake.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(anthropicBody("hi")),
      signal: controller.signal,
    });
    const reader = response.body?.getReader();
    if (!reader) throw new Error("no body");
    let received = "";
    while (!received.includes("content_block_delta")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stream ended before the first delta");
      received += new TextDecoder().decode(value);
    }
    controller.abort();
    await vi.waitFor(() => expect(fake.requests[0]?.clientDisconnected).toBe(true));
    expect(
      parseSseEvents(received).filter((event) => event.event === "content_block_delta").length,
    ).toBeLessThan(10);
  });

  it("shares one queue across providers; an exhausted queue falls back to the default script", async () => {
    fake.setScript([{ text: "first" }, { text: "second" }]);
    const one = await postSse(anthropic(fake.url), anthropicBody("hi"));
    const two = await postSse(`${fake.url}/v1/responses`, openaiBody("hi"));
    const three = await postSse(anthropic(fake.url), anthropicBody("hi"));
    expect(anthropicText(one.data)).toBe("first");
    expect(two.data.find((event) => event.type === "response.output_text.done")).toMatchObject({
      text: "second",
    });
    // The request offers Bash, so the greeting names the prompt that makes the agent act.
    expect(anthropicText(three.data)).toBe(`Hello from the fake anthropic provider. ${TOOL_HINT}`);
  });

  it("keeps separate queues per provider and hands script functions a provider-neutral view", async () => {
    const seen: FakeRequestView[] = [];
    fake.setScript({
      anthropic: [{ text: "for claude" }],
      openai: (view) => {
        seen.push(view);
        return { text: `you said: ${view.prompt}` };
      },
    });
    const codex = await postSse(`${fake.url}/v1/responses`, openaiBody("ping"));
    const claude = await postSse(anthropic(fake.url), anthropicBody("hi"));
    expect(codex.data.find((event) => event.type === "response.output_text.done")).toMatchObject({
      text: "you said: ping",
    });
    expect(anthropicText(claude.data)).toBe("for claude");
    expect(seen).toMatchObject([
      {
        provider: "openai",
        model: "gpt-test",
        stream: true,
        prompt: "ping",
        lastIsToolResult: false,
        toolNames: ["exec_command"],
        freeformToolNames: [],
        request: { path: "/v1/responses" },
      },
    ]);
  });

  it("calls the shell tool for `create file NAME` by default and leaves harness context out of the prompt", async () => {
    const body = {
      ...anthropicBody(""),
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "<system-reminder>\ncreate file wrong.txt\n</system-reminder>" },
            { type: "text", text: 'create file notes.txt containing "it works"' },
          ],
        },
      ],
    };
    const { data } = await postSse(anthropic(fake.url), body);
    const json = data
      .filter((event) => event.type === "content_block_delta")
      .map((event) => {
        const delta = event.delta;
        return typeof delta === "object" && delta !== null && "partial_json" in delta
          ? String(delta.partial_json)
          : "";
      })
      .join("");
    expect(JSON.parse(json)).toMatchObject({ command: "printf '%s\\n' 'it works' > 'notes.txt'" });
  });

  it("answers 400 when the script asks for a shell call the request cannot take", async () => {
    fake.setScript([{ toolCall: { command: "ls" } }]);
    const reply = await postJson(anthropic(fake.url), { ...anthropicBody("hi"), tools: [] });
    expect(reply.status).toBe(400);
    expect(digString(reply.json, "error", "message")).toContain("offers no shell tool");
  });

  it("answers 500 with the reason when a script function throws", async () => {
    fake.setScript(() => {
      throw new Error("script bug");
    });
    const reply = await postJson(anthropic(fake.url), anthropicBody("hi"));
    expect(reply.status).toBe(500);
    expect(digString(reply.json, "error", "message")).toContain("script bug");
  });

  it("answers the HEAD / probe Claude Code sends before its first request", async () => {
    const response = await fetch(`${fake.url}/`, { method: "HEAD" });
    expect(response.status).toBe(200);
  });

  it("listens on the port asked for and closes cleanly with a stream still open", async () => {
    const other = await startFakeProviders({ port: 0, script: [{ text: "slow", delayMs: 60_000 }] });
    expect(other.url).toBe(`http://127.0.0.1:${other.port}`);
    const response = await fetch(anthropic(other.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(anthropicBody("hi")),
    });
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    await other.close();
    await expect(response.text()).rejects.toThrow();
  });
});
