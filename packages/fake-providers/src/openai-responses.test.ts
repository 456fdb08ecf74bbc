import { request as httpRequest } from "node:http";
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

const headers = { authorization: "Bearer sk-placeholder" };
const execCommand = { type: "function", name: "exec_command", parameters: { type: "object" } };

function userMessage(text: string) {
  return { type: "message", role: "user", content: [{ type: "input_text", text }] };
}

function request(overrides: Record<string, unknown> = {}) {
  return {
    model: "gpt-test",
    stream: true,
    input: [userMessage("say hi")],
    tools: [execCommand],
    ...overrides,
  };
}

describe("OpenAI Responses API", () => {
  it("streams a text turn: created, message item, text deltas, completed with usage", async () => {
    fake.setScript([{ text: "Hello there", usage: { inputTokens: 20, outputTokens: 2 } }]);
    const { events, data } = await postSse(`${fake.url}/v1/responses`, request(), headers);

    expect(events.map((event) => event.event)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(data.map((event) => event.sequence_number)).toEqual(data.map((_, index) => index));
    expect(
      data.filter((event) => event.type === "response.output_text.delta").map((event) => event.delta),
    ).toEqual(["Hello ", "there"]);
    expect(data.find((event) => event.type === "response.output_text.done")).toMatchObject({
      text: "Hello there",
    });
    expect(data.at(-1)).toMatchObject({
      response: {
        status: "completed",
        model: "gpt-test",
        output: [
          { type: "message", role: "assistant", content: [{ type: "output_text", text: "Hello there" }] },
        ],
        usage: { input_tokens: 20, output_tokens: 2, total_tokens: 22 },
      },
    });
  });

  it("calls Codex's exec_command with {cmd} as a function_call item", async () => {
    fake.setScript([{ toolCall: { command: "touch made.txt" } }]);
    const { data } = await postSse(`${fake.url}/v1/responses`, request(), headers);

    const added = data.find((event) => event.type === "response.output_item.added");
    expect(added).toMatchObject({ item: { type: "function_call", name: "exec_command", arguments: "" } });
    const deltas = data
      .filter((event) => event.type === "response.function_call_arguments.delta")
      .map((event) => digString(event, "delta"));
    expect(JSON.parse(deltas.join(""))).toEqual({ cmd: "touch made.txt" });
    const done = data.find((event) => event.type === "response.output_item.done");
    expect(JSON.parse(digString(done, "item", "arguments"))).toEqual({ cmd: "touch made.txt" });
    expect(digString(done, "item", "call_id")).toMatch(/^call_/);
    expect(dig(data.at(-1), "response", "output", 0, "type")).toBe("function_call");
  });

  it("calls the tool the script names, shaped as that tool declares", async () => {
    const shell = { type: "function", name: "shell", parameters: { type: "object" } };
    fake.setScript([{ toolCall: { command: "ls -la", tool: "shell" } }]);
    const { data } = await postSse(
      `${fake.url}/v1/responses`,
      request({ tools: [execCommand, shell] }),
      headers,
    );
    const done = data.find((event) => event.type === "response.output_item.done");
    expect(dig(done, "item", "name")).toBe("shell");
    expect(JSON.parse(digString(done, "item", "arguments"))).toEqual({ command: ["bash", "-lc", "ls -la"] });
  });

  it("drives Codex's code mode through its freeform exec tool", async () => {
    // Codex offers its tools for the models it knows as an `additional_tools` input item.
    const additionalTools = {
      type: "additional_tools",
      role: "developer",
      tools: [
        {
          type: "namespace",
          name: "functions",
          tools: [{ type: "custom", name: "exec", format: { type: "grammar" } }],
        },
      ],
    };
    fake.setScript([{ toolCall: { command: "echo hi" } }]);
    const body = request({ tools: undefined, input: [additionalTools, userMessage("go")] });
    const { data } = await postSse(`${fake.url}/v1/responses`, body, headers);

    const deltas = data
      .filter((event) => event.type === "response.custom_tool_call_input.delta")
      .map((event) => digString(event, "delta"));
    const done = data.find((event) => event.type === "response.output_item.done");
    expect(done).toMatchObject({ item: { type: "custom_tool_call", name: "exec" } });
    expect(digString(done, "item", "input")).toBe(deltas.join(""));
    expect(deltas.join("")).toContain('await tools.exec_command({ cmd: "echo hi" })');
  });

  it("answers a function_call_output with a final text turn by default", async () => {
    const body = request({
      input: [
        userMessage("create file a.txt"),
        { type: "function_call", call_id: "call_1", name: "exec_command", arguments: "{}" },
        { type: "function_call_output", call_id: "call_1", output: "" },
      ],
    });
    const { data } = await postSse(`${fake.url}/v1/responses`, body, headers);
    expect(data.find((event) => event.type === "response.output_text.done")).toMatchObject({ text: "Done." });
  });

  it("answers non-streaming requests with the completed response object", async () => {
    fake.setScript([{ text: "plain" }]);
    const reply = await postJson(`${fake.url}/v1/responses`, request({ stream: false }), headers);
    expect(reply.json).toMatchObject({
      object: "response",
      status: "completed",
      output: [{ type: "message", content: [{ type: "output_text", text: "plain" }] }],
    });
  });

  it("answers a scripted error in OpenAI's error shape", async () => {
    fake.setScript([{ error: { status: 400, type: "context_length_exceeded", message: "too long" } }]);
    const reply = await postJson(`${fake.url}/v1/responses`, request(), headers);
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual({
      error: {
        message: "too long",
        type: "context_length_exceeded",
        param: null,
        code: "context_length_exceeded",
      },
    });
  });

  it("refuses a WebSocket upgrade with 426 so Codex falls back to SSE", async () => {
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const upgrade = httpRequest(`${fake.url}/v1/responses`, {
        headers: {
          ...headers,
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
      });
      upgrade.on("response", (response) => {
        response.resume();
        resolve(response.statusCode);
      });
      upgrade.on("upgrade", () => reject(new Error("the fake accepted a WebSocket")));
      upgrade.on("error", reject);
      upgrade.end();
    });
    expect(status).toBe(426);
    expect(fake.requests).toMatchObject([
      {
        provider: "openai",
        method: "GET",
        path: "/v1/responses",
        headers: { authorization: headers.authorization },
      },
    ]);
  });
});
