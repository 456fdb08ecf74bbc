/**
 * The gateway's own bounds: bytes buffered per request, per sandbox and in total, requests in
 * flight per sandbox, clients that stall, and odd input (no key, unreachable upstream, a client
 * that leaves mid-stream). Each ends in a 4xx/5xx in the error shape or a closed stream, never a
 * hang, and gives back everything it held.
 */
import type { Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Gateway, GatewayOptions, GatewayRefusal, UsageRecord } from "./gateway.js";
import { createGateway } from "./gateway.js";
import type { RawResponse } from "./testing/raw-http.js";
import { openRawRequest, rawRequest, startRecorder } from "./testing/raw-http.js";

type Recorder = Awaited<ReturnType<typeof startRecorder>>;

const PLACEHOLDERS: Record<string, string> = { pdg_a: "sbx_a", pdg_b: "sbx_b" };

let upstream: Recorder;
let gateway: Gateway;
const servers: Server[] = [];
const ports: Record<string, number> = {};
const refused: GatewayRefusal[] = [];

async function serve(target: Gateway, sandboxId: string | undefined): Promise<number> {
  const server = createServer((req, res) =>
    target.handle(req, res, sandboxId === undefined ? undefined : { sandboxId }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

function gatewayOptions(upstreamUrl: string, extra: Partial<GatewayOptions> = {}): GatewayOptions {
  return {
    upstreams: { anthropic: upstreamUrl, openai: upstreamUrl, gemini: upstreamUrl },
    resolvePlaceholder: async (placeholder) => {
      const sandboxId = PLACEHOLDERS[placeholder];
      return sandboxId ? { userId: `usr_${sandboxId}`, sandboxId } : undefined;
    },
    credentialFor: async () => ({ kind: "api_key", secret: "sk-ant-REAL" }),
    recordUsage: () => undefined,
    onRefused: (refusal) => refused.push(refusal),
    ...extra,
  };
}

beforeAll(async () => {
  upstream = await startRecorder();
  gateway = createGateway(
    gatewayOptions(upstream.url, {
      limits: {
        maxRequestBytes: 3000,
        maxBufferedBytesPerSandbox: 4096,
        maxConcurrentRequestsPerSandbox: 3,
        bodyIdleTimeoutMs: 300,
      },
    }),
  );
  ports.a = await serve(gateway, "sbx_a");
  ports.b = await serve(gateway, "sbx_b");
});

afterAll(async () => {
  await gateway.close();
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await upstream.close();
});

beforeEach(() => {
  upstream.hits.length = 0;
  refused.length = 0;
});

const head = (port: number, placeholder: string, extra: string[]): string =>
  [
    "POST /anthropic/v1/messages HTTP/1.1",
    `host: 127.0.0.1:${port}`,
    `x-api-key: ${placeholder}`,
    "content-type: application/json",
    ...extra,
  ].join("\r\n");

function errorOf(response: RawResponse): { code: string; message: string } {
  return (JSON.parse(response.body) as { error: { code: string; message: string } }).error;
}

/** Waits for a state the gateway reaches on its own (a reservation made, a buffer given back). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe("gateway request budget", () => {
  it("answers 413 for a body announced over the per-request limit, before reading it", async () => {
    const response = await rawRequest(
      ports.a ?? 0,
      head(ports.a ?? 0, "pdg_a", ["content-length: 3001"]),
      "x".repeat(3001),
    );
    expect(response.status).toBe(413);
    expect(errorOf(response).code).toBe("payload_too_large");
    expect(errorOf(response).message).toContain("3000 bytes");
    expect(upstream.hits).toEqual([]);
    expect(refused.map((r) => r.code)).toEqual(["payload_too_large"]);
    expect(gateway.stats()).toEqual({ requests: 0, bufferedBytes: 0 });
  });

  it("answers 413 for a chunked body that grows over the limit, without holding it", async () => {
    const request = openRawRequest(ports.a ?? 0, head(ports.a ?? 0, "pdg_a", ["transfer-encoding: chunked"]));
    const chunk = "y".repeat(1000);
    for (let i = 0; i < 4; i++) request.send(`${(1000).toString(16)}\r\n${chunk}\r\n`);
    const response = await request.response;
    expect(response.status).toBe(413);
    expect(errorOf(response).code).toBe("payload_too_large");
    expect(upstream.hits).toEqual([]);
    await until(() => gateway.stats().requests === 0);
    expect(gateway.stats()).toEqual({ requests: 0, bufferedBytes: 0 });
  });

  it("answers 429 when a sandbox's concurrent bodies would pass its budget; other sandboxes go on", async () => {
    // 3000 bytes announced and held by a client that sends only the start of its body.
    const slow = openRawRequest(ports.a ?? 0, head(ports.a ?? 0, "pdg_a", ["content-length: 3000"]));
    slow.send("{");
    await until(() => gateway.stats("sbx_a").bufferedBytes === 3000);

    const over = await rawRequest(
      ports.a ?? 0,
      head(ports.a ?? 0, "pdg_a", ["content-length: 2000"]),
      "z".repeat(2000),
    );
    expect(over.status).toBe(429);
    expect(errorOf(over).code).toBe("limit_exceeded");
    expect(errorOf(over).message).toContain("4096");

    const other = await rawRequest(
      ports.b ?? 0,
      head(ports.b ?? 0, "pdg_b", ["content-length: 2000"]),
      "z".repeat(2000),
    );
    expect(other.status).toBe(200);
    expect(upstream.hits.length).toBe(1);

    slow.close();
    await until(() => gateway.stats().requests === 0);
    expect(gateway.stats()).toEqual({ requests: 0, bufferedBytes: 0 });
    const after = await rawRequest(
      ports.a ?? 0,
      head(ports.a ?? 0, "pdg_a", ["content-length: 2000"]),
      "z".repeat(2000),
    );
    expect(after.status).toBe(200);
  });

  it("answers 429 past the requests a sandbox may have in flight", async () => {
    const held = [0, 1, 2].map(() => {
      const request = openRawRequest(ports.a ?? 0, head(ports.a ?? 0, "pdg_a", ["content-length: 10"]));
      request.send("{");
      return request;
    });
    await until(() => gateway.stats("sbx_a").requests === 3);
    const fourth = await rawRequest(ports.a ?? 0, head(ports.a ?? 0, "pdg_a", ["content-length: 2"]), "{}");
    expect(fourth.status).toBe(429);
    expect(errorOf(fourth).code).toBe("limit_exceeded");
    for (const request of held) request.close();
    await until(() => gateway.stats().requests === 0);
  });

  it("abandons a body that stalls with 408 and gives its budget back", async () => {
    const stalled = openRawRequest(ports.a ?? 0, head(ports.a ?? 0, "pdg_a", ["content-length: 100"]));
    stalled.send('{"model":');
    const response = await stalled.response;
    expect(response.status).toBe(408);
    expect(errorOf(response).code).toBe("request_timeout");
    expect(upstream.hits).toEqual([]);
    expect(refused.map((r) => r.code)).toEqual(["request_timeout"]);
    await until(() => gateway.stats().requests === 0);
    expect(gateway.stats()).toEqual({ requests: 0, bufferedBytes: 0 });
  });

  it("refuses a request with more headers than any client sends", async () => {
    const many = Array.from({ length: 150 }, (_, i) => `x-filler-${i}: 1`);
    const response = await rawRequest(
      ports.a ?? 0,
      head(ports.a ?? 0, "pdg_a", ["content-length: 2", ...many]),
      "{}",
    );
    expect(response.status).toBe(400);
    expect(errorOf(response).code).toBe("invalid_request");
    expect(upstream.hits).toEqual([]);
  });
});

describe("gateway odd input", () => {
  it("answers 401 in the error shape for a missing or unknown key, and forwards nothing", async () => {
    const missing = await rawRequest(
      ports.a ?? 0,
      ["POST /anthropic/v1/messages HTTP/1.1", `host: 127.0.0.1:${ports.a}`, "content-length: 2"].join(
        "\r\n",
      ),
      "{}",
    );
    expect(missing.status).toBe(401);
    expect(errorOf(missing).code).toBe("unauthorized");
    const unknown = await rawRequest(
      ports.a ?? 0,
      head(ports.a ?? 0, "pdg_nobody", ["content-length: 2"]),
      "{}",
    );
    expect(unknown.status).toBe(401);
    expect(upstream.hits).toEqual([]);
  });

  it("relays a body sent with expect: 100-continue (curl's habit for large bodies)", async () => {
    const response = await rawRequest(
      ports.a ?? 0,
      head(ports.a ?? 0, "pdg_a", ["content-length: 2", "expect: 100-continue"]),
      "{}",
    );
    expect(response.status).toBe(200);
    expect(upstream.hits.length).toBe(1);
  });

  it("answers 502 upstream_unreachable when the upstream is down", async () => {
    const closed = await startRecorder();
    await closed.close();
    const down = createGateway(gatewayOptions(closed.url));
    const port = await serve(down, "sbx_a");
    const response = await rawRequest(port, head(port, "pdg_a", ["content-length: 2"]), "{}");
    expect(response.status).toBe(502);
    expect(errorOf(response)).toEqual({
      code: "upstream_unreachable",
      message: "the anthropic upstream could not be reached",
    });
    expect(down.stats()).toEqual({ requests: 0, bufferedBytes: 0 });
    await down.close();
  });
});

describe("gateway with a client that leaves mid-stream", () => {
  let fake: FakeProviders;
  let streaming: Gateway;
  let port: number;
  const usage: UsageRecord[] = [];

  beforeAll(async () => {
    fake = await startFakeProviders({ script: [{ text: "one two three four five six seven", delayMs: 50 }] });
    streaming = createGateway(gatewayOptions(fake.url, { recordUsage: (record) => usage.push(record) }));
    port = await serve(streaming, "sbx_a");
  });

  afterAll(async () => {
    await streaming.close();
    await fake.close();
  });

  it("ends the upstream stream, records what was used and keeps serving", async () => {
    const abort = new AbortController();
    const response = await fetch(`http://127.0.0.1:${port}/anthropic/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": "pdg_a", "content-type": "application/json" },
      body: JSON.stringify({
        model: "claude-fake",
        max_tokens: 64,
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
      signal: abort.signal,
    });
    const reader = response.body?.getReader();
    if (!reader) throw new Error("no body");
    expect(Buffer.from((await reader.read()).value ?? []).toString()).toContain("message_start");
    abort.abort();
    await until(() => fake.requests[0]?.clientDisconnected === true);
    await until(() => usage.length === 1);
    expect(usage[0]).toMatchObject({ provider: "anthropic", sandboxId: "sbx_a", model: "claude-fake" });
    expect(streaming.stats()).toEqual({ requests: 0, bufferedBytes: 0 });

    const next = await fetch(`http://127.0.0.1:${port}/anthropic/v1/models`, {
      headers: { "x-api-key": "pdg_a" },
    });
    expect(next.status).toBe(200);
  });
});
