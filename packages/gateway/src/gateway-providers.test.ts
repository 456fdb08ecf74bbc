/**
 * The allow-list lets through what real clients send: the provider SDKs Polydev's built-in agent
 * uses (and sandbox tools use), and the requests the agent CLIs make, all relayed to the fake
 * providers (packages/fake-providers) with the placeholder swapped for the real key.
 */
import type { Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Gateway, UsageRecord } from "./gateway.js";
import { createGateway } from "./gateway.js";
import type { GatewayProvider } from "./providers.js";
import { rawRequest } from "./testing/raw-http.js";

const PLACEHOLDER = "pdg_sandbox_p";
const REAL_KEYS: Record<GatewayProvider, string> = {
  anthropic: "sk-ant-REAL-anthropic",
  openai: "sk-REAL-openai",
  gemini: "REAL-gemini",
};

let fake: FakeProviders;
let gateway: Gateway;
let server: Server;
let port: number;
let base: string;
const usage: UsageRecord[] = [];
const refused: string[] = [];

beforeAll(async () => {
  fake = await startFakeProviders();
  gateway = createGateway({
    upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
    resolvePlaceholder: async (placeholder) =>
      placeholder === PLACEHOLDER ? { userId: "usr_p", sandboxId: "sbx_p" } : undefined,
    credentialFor: async (_userId, provider) => ({ kind: "api_key", secret: REAL_KEYS[provider] }),
    recordUsage: (record) => usage.push(record),
    onRefused: (refusal) => refused.push(`${refusal.method} ${refusal.path}: ${refusal.reason}`),
  });
  server = createServer((req, res) => gateway.handle(req, res, { sandboxId: "sbx_p" }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await gateway.close();
  server.closeAllConnections();
  server.close();
  await fake.close();
});

beforeEach(() => {
  fake.requests.length = 0;
});

/** Every request the fake saw carried the real key of its provider and never the placeholder. */
function expectKeysSwapped(provider: GatewayProvider): void {
  expect(fake.requests.length).toBeGreaterThan(0);
  for (const request of fake.requests) {
    expect(JSON.stringify(request)).not.toContain(PLACEHOLDER);
    const header =
      provider === "anthropic"
        ? request.headers["x-api-key"]
        : provider === "openai"
          ? request.headers.authorization
          : request.headers["x-goog-api-key"];
    expect(header).toBe(provider === "openai" ? `Bearer ${REAL_KEYS.openai}` : REAL_KEYS[provider]);
  }
  expect(refused).toEqual([]);
}

const paths = (): string[] => fake.requests.map((r) => `${r.method} ${r.path}`);

describe("the gateway relays what the Anthropic SDK and Claude Code send", () => {
  const client = (): Anthropic =>
    new Anthropic({ baseURL: `${base}/anthropic`, apiKey: PLACEHOLDER, maxRetries: 0 });

  it("streams messages, counts tokens and lists models", async () => {
    const stream = client().messages.stream({
      model: "claude-fake",
      max_tokens: 64,
      messages: [{ role: "user", content: "hello" }],
    });
    const message = await stream.finalMessage();
    expect(message.content[0]).toMatchObject({ type: "text" });
    const created = await client().messages.create({
      model: "claude-fake",
      max_tokens: 64,
      messages: [{ role: "user", content: "hello" }],
    });
    expect(created.usage.output_tokens).toBeGreaterThan(0);
    const counted = await client().messages.countTokens({
      model: "claude-fake",
      messages: [{ role: "user", content: "hello" }],
    });
    expect(counted.input_tokens).toBeGreaterThan(0);
    const models = await client().models.list();
    expect(models.data.length).toBeGreaterThan(0);
    await client().models.retrieve("claude-fake");
    expect(paths()).toEqual([
      "POST /v1/messages",
      "POST /v1/messages",
      "POST /v1/messages/count_tokens",
      "GET /v1/models",
      "GET /v1/models/claude-fake",
    ]);
    expectKeysSwapped("anthropic");
    expect(usage.at(-5)).toMatchObject({ provider: "anthropic", model: "claude-fake", sandboxId: "sbx_p" });
    expect(usage.at(-5)?.outputTokens).toBeGreaterThan(0);
  });

  it("answers Claude Code's base URL probe and its ?beta=true messages call", async () => {
    const probe = await fetch(`${base}/anthropic`, { method: "HEAD", headers: { "x-api-key": PLACEHOLDER } });
    expect(probe.status).toBe(200);
    const response = await fetch(`${base}/anthropic/v1/messages?beta=true`, {
      method: "POST",
      headers: {
        "x-api-key": PLACEHOLDER,
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
      },
      body: JSON.stringify({
        model: "claude-fake",
        max_tokens: 16,
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("message_stop");
    expect(paths()).toEqual(["HEAD /", "POST /v1/messages"]);
    expect(fake.requests[1]?.query).toEqual({ beta: "true" });
    expectKeysSwapped("anthropic");
  });
});

describe("the gateway relays what the OpenAI SDK and Codex send", () => {
  const client = (): OpenAI =>
    new OpenAI({ baseURL: `${base}/openai/v1`, apiKey: PLACEHOLDER, maxRetries: 0 });

  it("streams chat completions and responses, lists models", async () => {
    const chat = await client().chat.completions.create({
      model: "gpt-fake",
      messages: [{ role: "user", content: "hello" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    for await (const chunk of chat) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    const responses = await client().responses.create({ model: "gpt-fake", input: "hello", stream: true });
    let completed = false;
    for await (const event of responses) if (event.type === "response.completed") completed = true;
    expect(completed).toBe(true);
    const models = await client().models.list();
    expect(models.data.length).toBeGreaterThan(0);
    await client().models.retrieve("gpt-fake");
    expect(paths()).toEqual([
      "POST /v1/chat/completions",
      "POST /v1/responses",
      "GET /v1/models",
      "GET /v1/models/gpt-fake",
    ]);
    expectKeysSwapped("openai");
    expect(usage.at(-4)).toMatchObject({ provider: "openai", model: "gpt-fake" });
    expect(usage.at(-4)?.outputTokens).toBeGreaterThan(0);
  });

  it("relays embeddings and Codex's compaction call (the fake has no such routes and answers 404)", async () => {
    await expect(
      client().embeddings.create({ model: "text-embedding-fake", input: "hello" }),
    ).rejects.toThrow(/404/);
    const compact = await fetch(`${base}/openai/v1/responses/compact`, {
      method: "POST",
      headers: { authorization: `Bearer ${PLACEHOLDER}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-fake", input: [] }),
    });
    expect(compact.status).toBe(404);
    expect(await compact.text()).toContain("fake-providers: no route");
    expect(paths()).toEqual(["POST /v1/embeddings", "POST /v1/responses/compact"]);
    expectKeysSwapped("openai");
  });

  it("relays Codex's WebSocket attempt on GET /v1/responses, so it can fall back to SSE", async () => {
    const response = await rawRequest(
      port,
      [
        "GET /openai/v1/responses HTTP/1.1",
        `host: 127.0.0.1:${port}`,
        `authorization: Bearer ${PLACEHOLDER}`,
        "upgrade: websocket",
        "sec-websocket-version: 13",
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
      ].join("\r\n"),
    );
    expect(response.status).toBe(426);
    expect(paths()).toEqual(["GET /v1/responses"]);
    expectKeysSwapped("openai");
  });
});

describe("the gateway relays what @google/genai and the Gemini CLI send", () => {
  const client = (): GoogleGenAI =>
    new GoogleGenAI({ apiKey: PLACEHOLDER, httpOptions: { baseUrl: `${base}/gemini` } });

  it("streams and generates content, counts tokens and lists models", async () => {
    let text = "";
    for await (const chunk of await client().models.generateContentStream({
      model: "gemini-2.5-flash",
      contents: "hello",
    })) {
      text += chunk.text ?? "";
    }
    expect(text.length).toBeGreaterThan(0);
    const generated = await client().models.generateContent({ model: "gemini-2.5-flash", contents: "hello" });
    expect(generated.text?.length).toBeGreaterThan(0);
    const counted = await client().models.countTokens({ model: "gemini-2.5-flash", contents: "hello" });
    expect(counted.totalTokens).toBeGreaterThan(0);
    const model = await client().models.get({ model: "gemini-2.5-flash" });
    expect(model.name).toContain("gemini-2.5-flash");
    const pager = await client().models.list();
    expect(pager.page.length).toBeGreaterThan(0);
    expect(paths()).toEqual([
      "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent",
      "POST /v1beta/models/gemini-2.5-flash:generateContent",
      "POST /v1beta/models/gemini-2.5-flash:countTokens",
      "GET /v1beta/models/gemini-2.5-flash",
      "GET /v1beta/models",
    ]);
    expect(fake.requests[0]?.query).toEqual({ alt: "sse" });
    expectKeysSwapped("gemini");
    expect(usage.at(-5)).toMatchObject({ provider: "gemini", model: "gemini-2.5-flash" });
    expect(usage.at(-5)?.outputTokens).toBeGreaterThan(0);
  });

  it("takes the placeholder from ?key= and sends the real key in its place, on v1 paths too", async () => {
    const response = await fetch(
      `${base}/gemini/v1/models/gemini-2.5-flash:generateContent?key=${PLACEHOLDER}`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ contents: [{ role: "user", parts: [{ text: "hello" }] }] }),
      },
    );
    expect(response.status).toBe(200);
    expect(paths()).toEqual(["POST /v1/models/gemini-2.5-flash:generateContent"]);
    expect(fake.requests[0]?.query).toEqual({});
    expectKeysSwapped("gemini");
  });
});
