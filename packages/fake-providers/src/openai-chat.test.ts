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

const bash = { type: "function", function: { name: "bash", parameters: { type: "object" } } };

function request(overrides: Record<string, unknown> = {}) {
  return {
    model: "local-model",
    stream: true,
    messages: [{ role: "user", content: "say hi" }],
    ...overrides,
  };
}

describe("OpenAI Chat Completions", () => {
  it("streams text chunks, a finish chunk, the usage chunk when asked, then [DONE]", async () => {
    fake.setScript([{ text: "Hi you", usage: { inputTokens: 5, outputTokens: 2 } }]);
    const { events, data } = await postSse(
      `${fake.url}/v1/chat/completions`,
      request({ stream_options: { include_usage: true } }),
    );

    expect(events.every((event) => event.event === undefined)).toBe(true);
    expect(events.at(-1)?.data).toBe("[DONE]");
    expect(data[0]).toMatchObject({
      object: "chat.completion.chunk",
      choices: [{ delta: { role: "assistant", content: "" } }],
    });
    const text = data
      .map((chunk) => dig(chunk, "choices", 0, "delta", "content"))
      .filter((content) => typeof content === "string")
      .join("");
    expect(text).toBe("Hi you");
    expect(data.at(-2)).toMatchObject({ choices: [{ delta: {}, finish_reason: "stop" }] });
    expect(data.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
    });
  });

  it("streams a tool call as tool_calls deltas and sends no usage chunk unless asked", async () => {
    fake.setScript([{ toolCall: { command: "pwd" } }]);
    const { data } = await postSse(`${fake.url}/v1/chat/completions`, request({ tools: [bash] }));

    const calls = data.flatMap((chunk) => {
      const call = dig(chunk, "choices", 0, "delta", "tool_calls", 0);
      return call === undefined ? [] : [call];
    });
    expect(calls[0]).toMatchObject({ index: 0, type: "function", function: { name: "bash", arguments: "" } });
    const args = calls.slice(1).map((call) => digString(call, "function", "arguments"));
    expect(JSON.parse(args.join(""))).toEqual({ command: "pwd" });
    expect(data.at(-1)).toMatchObject({ choices: [{ finish_reason: "tool_calls" }] });
    expect(data.some((chunk) => "usage" in chunk)).toBe(false);
  });

  it("answers a tool message with a final text turn, non-streaming", async () => {
    const body = request({
      stream: false,
      tools: [bash],
      messages: [
        { role: "user", content: "create file a.txt" },
        {
          role: "assistant",
          tool_calls: [{ id: "c1", type: "function", function: { name: "bash", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: "c1", content: "" },
      ],
    });
    const reply = await postJson(`${fake.url}/v1/chat/completions`, body);
    expect(reply.json).toMatchObject({
      object: "chat.completion",
      choices: [{ message: { role: "assistant", content: "Done." }, finish_reason: "stop" }],
      usage: { total_tokens: expect.any(Number) },
    });
  });
});
