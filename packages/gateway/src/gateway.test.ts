import type { IncomingHttpHeaders, Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway, UsageRecord } from "./gateway.js";
import { createGateway } from "./gateway.js";
import { applyCredential } from "./providers.js";

/** A stand-in upstream that records what it received and streams SSE slowly. */
let upstream: Server;
let upstreamUrl: string;
const received: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
let releaseStream: () => void = () => undefined;

let gatewayServer: Server;
let gatewayUrl: string;
let gateway: Gateway;
const usage: UsageRecord[] = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      received.push({ url: req.url ?? "", headers: req.headers, body });
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(
        `event: message_start\ndata: ${JSON.stringify({ type: "message_start", message: { model: "claude-test", usage: { input_tokens: 11, output_tokens: 1 } } })}\n\n`,
      );
      // The rest waits until the test has seen the first chunk arrive: proof of no buffering.
      releaseStream = () => {
        res.write(
          `event: message_delta\ndata: ${JSON.stringify({ type: "message_delta", usage: { output_tokens: 7 } })}\n\n`,
        );
        res.end("event: message_stop\ndata: {}\n\n");
      };
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

  gateway = createGateway({
    upstreams: { anthropic: upstreamUrl, openai: upstreamUrl, gemini: upstreamUrl },
    resolvePlaceholder: async (placeholder) =>
      placeholder === "pdg_sandbox_a" ? { userId: "usr_a", sandboxId: "sbx_a" } : undefined,
    credentialFor: async (userId, provider) =>
      userId === "usr_a" && provider === "anthropic"
        ? { kind: "api_key", secret: "sk-ant-REAL-SECRET" }
        : undefined,
    recordUsage: (record) => usage.push(record),
  });
  gatewayServer = createServer((req, res) => gateway.handle(req, res));
  await new Promise<void>((resolve) => gatewayServer.listen(0, "127.0.0.1", resolve));
  gatewayUrl = `http://127.0.0.1:${(gatewayServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await gateway.close();
  gatewayServer.close();
  upstream.close();
});

describe("provider gateway", () => {
  it("swaps the placeholder for the real key, streams without buffering, and meters usage", async () => {
    const response = await fetch(`${gatewayUrl}/anthropic/v1/messages?beta=true`, {
      method: "POST",
      headers: {
        "x-api-key": "pdg_sandbox_a",
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
      },
      body: JSON.stringify({
        model: "claude-test",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    expect(response.status).toBe(200);
    const reader = response.body?.getReader();
    if (!reader) throw new Error("no body");
    const first = Buffer.from((await reader.read()).value ?? []).toString();
    expect(first).toContain("message_start");
    releaseStream();
    let rest = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      rest += Buffer.from(chunk.value).toString();
    }
    expect(rest).toContain("message_stop");

    const seen = received.at(-1);
    expect(seen?.url).toBe("/v1/messages?beta=true");
    expect(seen?.headers["x-api-key"]).toBe("sk-ant-REAL-SECRET");
    expect(seen?.headers["anthropic-version"]).toBe("2023-06-01");
    expect(JSON.stringify(seen?.headers)).not.toContain("pdg_sandbox_a");
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(usage.at(-1)).toMatchObject({
      userId: "usr_a",
      sandboxId: "sbx_a",
      provider: "anthropic",
      model: "claude-test",
      inputTokens: 11,
      outputTokens: 7,
    });
  });

  it("refuses an unknown or foreign placeholder with 401 and forwards nothing", async () => {
    const before = received.length;
    const response = await fetch(`${gatewayUrl}/anthropic/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": "pdg_someone_else", "content-type": "application/json" },
      body: "{}",
    });
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    expect(received.length).toBe(before);
  });

  it("answers 404 for a provider the owner has no credential for, without leaking anything", async () => {
    const response = await fetch(`${gatewayUrl}/openai/v1/responses`, {
      method: "POST",
      headers: { authorization: "Bearer pdg_sandbox_a", "content-type": "application/json" },
      body: "{}",
    });
    expect(response.status).toBe(404);
    const text = await response.text();
    expect(text).toContain("PUT /v1/credentials/openai");
    expect(text).not.toContain("REAL-SECRET");
  });
});

describe("provider gateway, tunnel identity", () => {
  it("refuses a placeholder that belongs to another sandbox than the tunnel it came through", async () => {
    const server = createServer((req, res) => gateway.handle(req, res, { sandboxId: "sbx_b" }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const before = received.length;
    const response = await fetch(
      `http://127.0.0.1:${(server.address() as AddressInfo).port}/anthropic/v1/messages`,
      {
        method: "POST",
        headers: { "x-api-key": "pdg_sandbox_a", "content-type": "application/json" },
        body: "{}",
      },
    );
    expect(response.status).toBe(401);
    expect(received.length).toBe(before);
    server.close();
  });
});

describe("provider gateway, subscription tokens", () => {
  it("sends an OAuth access token as a bearer with Anthropic's OAuth beta flag", async () => {
    const headers: Record<string, string> = { "x-api-key": "pdg_sandbox_a", "anthropic-beta": "tools-2024" };
    const url = new URL("http://upstream.invalid/v1/messages?key=pdg_sandbox_a");
    applyCredential("anthropic", { kind: "oauth", secret: "oauth-token" }, headers, url);
    expect(headers).toEqual({
      authorization: "Bearer oauth-token",
      "anthropic-beta": "tools-2024,oauth-2025-04-20",
    });
    expect(url.searchParams.has("key")).toBe(false);
  });
});
