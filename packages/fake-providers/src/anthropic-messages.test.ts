import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startFakeProviders } from "./server.js";
import { dig, digString, postJson, postSse } from "./testing/http-client.js";
import type { FakeProviders } from "./types.js";

let fake: FakeProviders;
beforeAll(async () => {
  fake = await startFakeProviders();
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.setScript(undefined);
  fake.requests.length = 0;
});

const headers = { "x-api-key": "sk-ant-placeholder", "anthropic-version": "2023-06-01" };
const bashTool = { name: "Bash", description: "Run a shell command", input_schema: { type: "object" } };

function request(overrides: Record<string, unknown> = {}) {
  return {
    model: "claude-test",
    max_tokens: 1024,
    stream: true,
    messages: [{ role: "user", content: "say hi" }],
    ...overrides,
  };
}

describe("Anthropic Messages API", () => {
  it("streams a text turn in the real event order, with usage at start and end", async () => {
    fake.setScript([{ text: "Hi there, friend", usage: { inputTokens: 12, outputTokens: 4 } }]);
    const { events, data } = await postSse(`${fake.url}/v1/messages?beta=true`, request(), headers);

    expect(events.map((event) => event.event)).toEqual([
      "message_start",
      "ping",
      "content_block_start",
      "content_block_delta",
      "content_block_delta",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    // Every data payload repeats its event name as `type`, as the real API does.
    expect(data.map((event) => event.type)).toEqual(events.map((event) => event.event));
    expect(data[0]).toMatchObject({
      message: { role: "assistant", model: "claude-test", content: [], usage: { input_tokens: 12 } },
    });
    expect(data[2]).toMatchObject({ index: 0, content_block: { type: "text", text: "" } });
    const text = data
      .filter((event) => event.type === "content_block_delta")
      .map((event) => digString(event, "delta", "text"))
      .join("");
    expect(text).toBe("Hi there, friend");
    expect(data[7]).toMatchObject({
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { output_tokens: 4 },
    });
  });

  it("streams a shell call as a tool_use block with input_json_delta pieces", async () => {
    fake.setScript([{ text: "Running it.", toolCall: { command: "echo hi > out.txt" } }]);
    const { data } = await postSse(`${fake.url}/v1/messages`, request({ tools: [bashTool] }), headers);

    const toolStart = data.find((event) => dig(event, "content_block", "type") === "tool_use");
    expect(toolStart).toMatchObject({ index: 1, content_block: { name: "Bash", input: {} } });
    expect(digString(toolStart, "content_block", "id")).toMatch(/^toolu_/);
    const json = data
      .filter((event) => dig(event, "delta", "type") === "input_json_delta")
      .map((event) => digString(event, "delta", "partial_json"));
    expect(json.length).toBeGreaterThan(1);
    expect(JSON.parse(json.join(""))).toEqual({ command: "echo hi > out.txt", description: "Run a command" });
    expect(data.find((event) => event.type === "message_delta")).toMatchObject({
      delta: { stop_reason: "tool_use" },
    });
  });

  it("answers the tool result with a final text turn by default", async () => {
    const body = request({
      tools: [bashTool],
      messages: [
        { role: "user", content: "create file a.txt" },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "Bash", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "" }] },
        // Claude Code appends system messages mid-conversation; they must not hide the tool result.
        { role: "system", content: "reminder" },
      ],
    });
    const { data } = await postSse(`${fake.url}/v1/messages`, body, headers);
    const text = data
      .filter((event) => event.type === "content_block_delta")
      .map((event) => digString(event, "delta", "text"))
      .join("");
    expect(text).toBe("Done.");
  });

  it("answers a continued conversation by quoting the follow-up and the first prompt", async () => {
    const body = request({
      messages: [
        { role: "user", content: [{ type: "text", text: "<system-reminder>context</system-reminder>" }] },
        { role: "user", content: "remember the word pelican" },
        { role: "assistant", content: [{ type: "text", text: "Hello from the fake anthropic provider." }] },
        { role: "user", content: "which word was it?" },
      ],
    });
    const { data } = await postSse(`${fake.url}/v1/messages`, body, headers);
    const text = data
      .filter((event) => event.type === "content_block_delta")
      .map((event) => digString(event, "delta", "text"))
      .join("");
    expect(text).toBe(
      'Following up: you asked "which word was it?", after you first asked "remember the word pelican".',
    );
  });

  it("answers non-streaming requests with one message object", async () => {
    fake.setScript([{ toolCall: { command: "ls" }, usage: { inputTokens: 7, outputTokens: 2 } }]);
    const reply = await postJson(
      `${fake.url}/v1/messages`,
      request({ stream: false, tools: [bashTool] }),
      headers,
    );
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({
      type: "message",
      role: "assistant",
      content: [{ type: "tool_use", name: "Bash", input: { command: "ls" } }],
      stop_reason: "tool_use",
      usage: { input_tokens: 7, output_tokens: 2 },
    });
  });

  it("answers a scripted error in the API's error shape", async () => {
    fake.setScript([{ error: { status: 429, message: "slow down" } }]);
    const reply = await postJson(`${fake.url}/v1/messages`, request(), headers);
    expect(reply.status).toBe(429);
    expect(reply.json).toEqual({ type: "error", error: { type: "rate_limit_error", message: "slow down" } });
    expect(reply.headers.get("request-id")).toMatch(/^req_/);
  });

  it("counts tokens and lists models", async () => {
    const count = await postJson(`${fake.url}/v1/messages/count_tokens`, request(), headers);
    expect(count.json).toEqual({ input_tokens: expect.any(Number) });
    const models = await fetch(`${fake.url}/v1/models`, { headers });
    expect(await models.json()).toMatchObject({
      data: [{ type: "model", id: "claude-fake" }],
      has_more: false,
    });
  });
});
