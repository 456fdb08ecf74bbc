import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startFakeProviders } from "./server.js";
import { dig, postJson, postSse } from "./testing/http-client.js";
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

const headers = { "x-goog-api-key": "gm-placeholder" };
const shellTool = {
  functionDeclarations: [{ name: "run_shell_command", parametersJsonSchema: { type: "object" } }],
};
const streamUrl = () => `${fake.url}/v1beta/models/gemini-test:streamGenerateContent?alt=sse`;

function request(overrides: Record<string, unknown> = {}) {
  return { contents: [{ role: "user", parts: [{ text: "say hi" }] }], tools: [shellTool], ...overrides };
}

describe("Gemini API", () => {
  it("streams text chunks, finishing on the last one with full usageMetadata", async () => {
    fake.setScript([{ text: "Hi from Gemini", usage: { inputTokens: 30, outputTokens: 3 } }]);
    const { events, data } = await postSse(streamUrl(), request(), headers);

    expect(events.every((event) => event.event === undefined)).toBe(true);
    expect(data.map((chunk) => dig(chunk, "candidates", 0, "content", "parts", 0, "text"))).toEqual([
      "Hi ",
      "from ",
      "Gemini",
    ]);
    expect(
      data.slice(0, -1).every((chunk) => dig(chunk, "candidates", 0, "finishReason") === undefined),
    ).toBe(true);
    expect(data.at(-1)).toMatchObject({
      candidates: [{ content: { role: "model" }, finishReason: "STOP" }],
      usageMetadata: { promptTokenCount: 30, candidatesTokenCount: 3, totalTokenCount: 33 },
      modelVersion: "gemini-test",
    });
  });

  it("streams a functionCall part for run_shell_command", async () => {
    fake.setScript([{ toolCall: { command: "mkdir out" } }]);
    const { data } = await postSse(streamUrl(), request(), headers);
    expect(data).toHaveLength(1);
    expect(data[0]).toMatchObject({
      candidates: [
        {
          content: {
            parts: [{ functionCall: { name: "run_shell_command", args: { command: "mkdir out" } } }],
          },
          finishReason: "STOP",
        },
      ],
    });
  });

  it("answers a functionResponse with a final text turn, non-streaming on :generateContent", async () => {
    const body = request({
      contents: [
        { role: "user", parts: [{ text: "create file a.txt" }] },
        { role: "model", parts: [{ functionCall: { name: "run_shell_command", args: {} } }] },
        {
          role: "user",
          parts: [{ functionResponse: { name: "run_shell_command", response: { output: "" } } }],
        },
      ],
    });
    const reply = await postJson(`${fake.url}/v1beta/models/gemini-test:generateContent`, body, headers);
    expect(reply.json).toMatchObject({
      candidates: [{ content: { parts: [{ text: "Done." }] }, finishReason: "STOP" }],
    });
  });

  it("answers structured-output requests (the CLI's model router) with JSON matching the schema", async () => {
    const schema = {
      type: "OBJECT",
      properties: { complexity_reasoning: { type: "STRING" }, complexity_score: { type: "INTEGER" } },
    };
    const body = request({
      generationConfig: { responseMimeType: "application/json", responseJsonSchema: schema },
    });
    const reply = await postJson(`${fake.url}/v1beta/models/gemini-router:generateContent`, body, headers);
    const text = dig(reply.json, "candidates", 0, "content", "parts", 0, "text");
    expect(JSON.parse(String(text))).toEqual({ complexity_reasoning: "fake", complexity_score: 1 });
  });

  it("leaves queued turns to the conversation when a structured-output call comes first", async () => {
    fake.setScript([{ text: "main answer" }]);
    const routerBody = request({
      generationConfig: { responseJsonSchema: { type: "OBJECT", properties: { model: { type: "STRING" } } } },
    });
    const router = await postJson(
      `${fake.url}/v1beta/models/gemini-router:generateContent`,
      routerBody,
      headers,
    );
    expect(dig(router.json, "candidates", 0, "content", "parts", 0, "text")).toBe('{"model":"fake"}');
    const { data } = await postSse(streamUrl(), request(), headers);
    expect(data.map((chunk) => dig(chunk, "candidates", 0, "content", "parts", 0, "text")).join("")).toBe(
      "main answer",
    );
  });

  it("answers a scripted error with google.rpc status names", async () => {
    fake.setScript([{ error: { status: 429, message: "quota" } }]);
    const reply = await postJson(streamUrl(), request(), headers);
    expect(reply.status).toBe(429);
    expect(reply.json).toEqual({ error: { code: 429, message: "quota", status: "RESOURCE_EXHAUSTED" } });
  });

  it("counts tokens and lists models", async () => {
    const count = await postJson(`${fake.url}/v1beta/models/gemini-test:countTokens`, request(), headers);
    expect(count.json).toEqual({ totalTokens: expect.any(Number) });
    const models = await fetch(`${fake.url}/v1beta/models`, { headers });
    expect(await models.json()).toMatchObject({ models: [{ name: "models/gemini-fake" }] });
  });
});
