/**
 * The HTTP layer under input no well-behaved client sends: requests Node's parser refuses,
 * bodies the server answers without reading, clients that hang up, junk in ids.
 */
import { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { DRAIN_LIMIT_BYTES, DRAIN_TIMEOUT_MS } from "./http/unread-body.js";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";
import type { RawResponse } from "./testing/raw-http.js";
import { rawExchange } from "./testing/raw-http.js";

let t: TestServer;
let api: ApiClient;
let id: string;
beforeAll(async () => {
  t = await startTestServer();
  api = await createUser(t.api, "http-user");
  id = await api.createSandbox();
});
afterAll(async () => {
  await t?.close();
});

function expectErrorShape(response: RawResponse | undefined, status: number, code: string): void {
  expect(response?.status).toBe(status);
  expect(response?.headers["content-type"]).toMatch(/^application\/json/);
  const body = JSON.parse(response?.body ?? "") as { error: { code: unknown; message: unknown } };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("requests refused before routing", () => {
  it.each([
    ["a request line that is not HTTP", "GARBAGE\r\n\r\n", 400, "invalid_request"],
    [
      "headers larger than Node accepts",
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
      431,
      "headers_too_large",
    ],
    [
      "a broken chunk size",
      "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
      400,
      "invalid_request",
    ],
    [
      "both Content-Length and Transfer-Encoding",
      "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400,
      "invalid_request",
    ],
    [
      "a control character in a header",
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\u0001c\r\n\r\n",
      400,
      "invalid_request",
    ],
  ])("answers %s in the error shape and closes", async (_name, request, status, code) => {
    const exchange = await rawExchange(t.url, [request], { expect: 2 });
    expect(exchange.timedOut).toBe(false);
    expect(exchange.closed).toBe(true);
    expect(exchange.responses).toHaveLength(1);
    expectErrorShape(exchange.responses[0], status, code);
    expect(exchange.responses[0]?.headers.connection).toBe("close");
  });

  it("answers a request Node timed out with 408 request_timeout", async () => {
    // Node only checks its request timeouts every 30 s, so the timeout itself is raised here,
    // on the server's end of a real connection, the way Node's own check raises it.
    const server = t.server.app.server;
    const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
    const client = new Socket();
    const received: Buffer[] = [];
    client.on("data", (chunk: Buffer) => received.push(chunk));
    const closed = new Promise((resolve) => client.once("close", resolve));
    const { hostname, port } = new URL(t.url);
    client.connect(Number(port), hostname);
    client.write("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
    const timeout = Object.assign(new Error("Request Timeout"), { code: "ERR_HTTP_REQUEST_TIMEOUT" });
    server.emit("clientError", timeout, await accepted);
    await closed;
    const text = Buffer.concat(received).toString("utf8");
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toMatch(/\r\nConnection: close\r\n/i);
    const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as { error: { code: string } };
    expect(body.error.code).toBe("request_timeout");
  });
});

describe("refusals Node and ws would write in their own words", () => {
  const handshake = (path: string, headers: string[]): string =>
    [`GET ${path} HTTP/1.1`, "Host: x", `Authorization: Bearer ${api.key}`, ...headers, "", ""].join("\r\n");
  const upgrade = ["Connection: Upgrade", "Upgrade: websocket"];
  const validKey = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

  it.each([
    ["an HTTP/1.1 request without Host", () => "GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid_request"],
    [
      "an expectation other than 100-continue",
      () => "GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: fz\r\n\r\n",
      417,
      "expectation_failed",
    ],
    [
      "a WebSocket handshake with a bad key",
      () =>
        handshake(`/v1/sandboxes/${id}/pty`, [
          ...upgrade,
          "Sec-WebSocket-Version: 13",
          "Sec-WebSocket-Key: x",
        ]),
      400,
      "invalid_request",
    ],
    [
      "a WebSocket handshake of an unknown version",
      () => handshake(`/v1/sandboxes/${id}/pty`, [...upgrade, "Sec-WebSocket-Version: 99", validKey]),
      400,
      "invalid_request",
    ],
    [
      "an upgrade to something other than WebSocket",
      () => handshake(`/v1/sandboxes/${id}/pty`, ["Connection: Upgrade", "Upgrade: h2c"]),
      400,
      "invalid_request",
    ],
    [
      "a WebSocket upgrade of a route that is not one",
      () => handshake(`/v1/sandboxes/${id}`, [...upgrade, "Sec-WebSocket-Version: 13", validKey]),
      400,
      "invalid_request",
    ],
  ])("answers %s in the error shape", async (_name, request, status, code) => {
    const exchange = await rawExchange(t.url, [request()], { expect: 1 });
    expect(exchange.timedOut).toBe(false);
    expectErrorShape(exchange.responses[0], status, code);
  });
});

describe("keep-alive after an upload answered before its body was read", () => {
  const healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  const upload = (
    path: string,
    bytes: number,
    auth = true,
    method = "PUT",
    type = "application/octet-stream",
  ): string =>
    [
      `${method} ${path} HTTP/1.1`,
      "Host: x",
      ...(auth ? [`Authorization: Bearer ${api.key}`] : []),
      `Content-Type: ${type}`,
      `Content-Length: ${bytes}`,
      "",
      "",
    ].join("\r\n");
  const bodyBytes = 2 * 1024 * 1024;

  it.each([
    ["no API key", () => upload(`/v1/sandboxes/${id}/files/content?path=a.bin`, bodyBytes, false), 401],
    [
      "an unknown sandbox",
      () => upload("/v1/sandboxes/sbx_missing/files/content?path=a.bin", bodyBytes),
      404,
    ],
    ["no path", () => upload(`/v1/sandboxes/${id}/files/content`, bodyBytes), 400],
    // The sandbox starts taking this body before the path is refused: half of it is left unread.
    ["a path outside the home", () => upload(`/v1/sandboxes/${id}/files/content?path=../x`, bodyBytes), 400],
    // Fastify refuses it from its length alone and would close the socket the client still
    // writes to, which resets it before the client reads the 413.
    [
      "a JSON body over the route's limit",
      () => upload(`/v1/sandboxes/${id}/network`, bodyBytes, true, "PATCH", "application/json"),
      413,
    ],
  ])("answers the next request after a refusal for %s", async (_name, head, status) => {
    const exchange = await rawExchange(t.url, [head(), Buffer.alloc(bodyBytes, 0x61), healthz], {
      expect: 2,
    });
    expect(exchange.timedOut).toBe(false);
    expect(exchange.responses.map((r) => r.status)).toEqual([status, 200]);
    expect(JSON.parse(exchange.responses[1]?.body ?? "")).toMatchObject({ status: "ok" });
  });

  it("closes the connection of a client that stops sending the refused body it is draining", async () => {
    const head = upload("/v1/sandboxes/sbx_missing/files/content?path=a.bin", bodyBytes, false);
    // A tenth of the body, then silence: without a bound, the connection would stay open for good.
    const exchange = await rawExchange(t.url, [head, Buffer.alloc(bodyBytes / 10, 0x61)], {
      expect: 2,
      waitMs: DRAIN_TIMEOUT_MS * 4,
    });
    expect(exchange.responses.map((r) => r.status)).toEqual([401]);
    expect(exchange.timedOut).toBe(false);
    expect(exchange.closed).toBe(true);
  });

  it("closes the connection instead of reading a refused body bigger than it drains", async () => {
    const bytes = DRAIN_LIMIT_BYTES + 1024 * 1024;
    const head = upload("/v1/sandboxes/sbx_missing/files/content?path=a.bin", bytes);
    const exchange = await rawExchange(t.url, [head, Buffer.alloc(bytes, 0x61), healthz], { expect: 2 });
    expect(exchange.timedOut).toBe(false);
    expect(exchange.closed).toBe(true);
    expect(exchange.responses).toHaveLength(1);
    expectErrorShape(exchange.responses[0], 404, "not_found");
    expect(exchange.responses[0]?.headers.connection).toBe("close");
  });
});

describe("a client that drops a buffered exec", () => {
  it("kills the command it started", async () => {
    // `[4]` keeps the pattern from matching the pgrep that looks for it.
    const running = async (): Promise<boolean> =>
      (await api.exec(id, ["pgrep", "-f", "sleep 98765[4]"])).body.exitCode === 0;
    const controller = new AbortController();
    const dropped = fetch(`${t.url}/v1/sandboxes/${id}/exec`, {
      method: "POST",
      headers: { authorization: `Bearer ${api.key}`, "content-type": "application/json" },
      body: JSON.stringify({ cmd: "sleep 987654; echo never" }),
      signal: controller.signal,
    }).catch(() => undefined);
    await until(running, "the command to start");
    controller.abort();
    await dropped;
    await until(async () => !(await running()), "the command to be killed");
  });
});

describe("the terminal route", () => {
  it("is in the OpenAPI document with its query parameters and the 101 answer", async () => {
    const doc = await api.call<{
      paths: Record<
        string,
        { get?: { parameters: { name: string; in: string }[]; responses: Record<string, unknown> } }
      >;
    }>("GET", "/v1/openapi.json");
    const pty = doc.body.paths["/v1/sandboxes/{id}/pty"]?.get;
    expect(pty).toBeDefined();
    expect(pty?.parameters.map((p) => `${p.in}:${p.name}`).sort()).toEqual([
      "path:id",
      "query:cols",
      "query:reconnect",
      "query:rows",
      "query:user",
    ]);
    expect(Object.keys(pty?.responses ?? {})).toContain("101");
  });

  it("answers a plain GET with 426 in the error shape, and still upgrades", async () => {
    const plain = await api.call<{ error: { code: string; message: string } }>(
      "GET",
      `/v1/sandboxes/${id}/pty`,
    );
    expect(plain.status).toBe(426);
    expect(plain.body.error.code).toBe("upgrade_required");
    expect(plain.headers.get("upgrade")).toBe("websocket");

    const ws = new WebSocket(`${t.url.replace("http", "ws")}/v1/sandboxes/${id}/pty`, {
      headers: { authorization: `Bearer ${api.key}` },
    });
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      ws.once("message", (data) => resolve(JSON.parse(data.toString()) as Record<string, unknown>));
      ws.once("error", reject);
    });
    expect(ready.type).toBe("ready");
    ws.close();
  });
});

describe("ids and cursors", () => {
  const junk = [
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "sbx_a%00b",
    "a".repeat(65),
    "%C3%BC%F0%9F%98%80",
    "sbx%20x",
    "sbx_x.y",
  ];

  it.each(junk)("refuses the id %s with 400 before any lookup", async (bad) => {
    for (const path of [
      `/v1/sandboxes/${bad}`,
      `/v1/sandboxes/${bad}/files?path=.`,
      `/v1/runs/${bad}`,
      `/v1/logins/${bad}`,
    ]) {
      const answer = await api.call<{ error: { code: string; message: string } }>("GET", path);
      expect({ path, status: answer.status }).toEqual({ path, status: 400 });
      expect(answer.body.error.code).toBe("invalid_request");
      expect(answer.body.error.message).toContain("ids are");
    }
    const proxy = await t.api.call("PUT", `/v1/admin/users/${bad}/proxy`, { proxyUrl: null });
    expect(proxy.status).toBe(400);
    const run = await api.call("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "hi",
      sandboxId: decodeURIComponent(bad),
    });
    expect(run.status).toBe(400);
  });

  it("refuses a cursor it did not hand out", async () => {
    for (const path of ["/v1/sandboxes", "/v1/runs", "/v1/admin/sandboxes"]) {
      const answer = await t.api.call<{ error: { code: string; message: string } }>(
        "GET",
        `${path}?cursor=${encodeURIComponent("../../x:%00")}`,
      );
      expect(answer.status).toBe(400);
      expect(answer.body.error.message).toContain("cursor");
    }
    const page = await api.call<{ nextCursor: string | null }>("GET", "/v1/sandboxes?limit=1");
    expect(page.status).toBe(200);
  });

  it("says what an id looks like for one longer than the router's default limit", async () => {
    const answer = await api.call<{ error: { code: string; message: string } }>(
      "GET",
      `/v1/sandboxes/${"x".repeat(500)}/files/stat?path=.`,
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toContain("ids are");
  });
});

describe("commands the kernel would refuse", () => {
  const refused = async (path: string, body: unknown, field: string): Promise<void> => {
    const answer = await api.call<{ error: { code: string; message: string } }>("POST", path, body);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe("invalid_request");
    expect(answer.body.error.message).toContain(field);
  };

  it("refuses an argument of 128 KiB or more, counted in bytes, before it reaches the sandbox", async () => {
    for (const path of [`/v1/sandboxes/${id}/exec`, `/v1/sandboxes/${id}/processes`]) {
      await refused(path, { cmd: ["echo", "a".repeat(128 * 1024)] }, "128 KiB");
      await refused(path, { cmd: "é".repeat(70_000) }, "128 KiB");
    }
    const fits = await api.exec(id, ["sh", "-c", 'printf %s "$1" | wc -c', "sh", "a".repeat(128 * 1024 - 1)]);
    expect(fits.body.stdout.trim()).toBe(String(128 * 1024 - 1));
  });

  it("refuses a command and environment larger than exec takes, and a sandbox environment that would leave no room", async () => {
    const wide = Array.from({ length: 12 }, () => "b".repeat(100_000));
    await refused(`/v1/sandboxes/${id}/exec`, { cmd: ["echo", ...wide] }, "1 MiB");
    const env = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`V${i}`, "v".repeat(30_000)]));
    await refused("/v1/sandboxes", { env }, "256 KiB");
  });

  it("refuses a prompt longer than one argument for the CLI agents, not for the built-in one", async () => {
    const prompt = "p".repeat(200 * 1024);
    await refused("/v1/runs", { agent: "claude", prompt, sandboxId: id }, "128 KiB");
    await refused("/v1/runs", { agents: ["builtin", "codex"], prompt, sandboxId: id }, "128 KiB");
    // A run starts only with its provider's credential (the fake key never reaches a provider:
    // the run is cancelled at once).
    await api.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-http-robustness-key" });
    const builtin = await api.call<{ id: string }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt,
      sandboxId: id,
    });
    expect(builtin.status).toBe(201);
    await api.call("POST", `/v1/runs/${builtin.body.id}/cancel`);
  });
});

describe("JSON bodies", () => {
  it("refuses a __proto__ key, which JSON.parse keeps and an object copy would turn into a prototype", async () => {
    const answer = await api.call<{ error: { code: string; message: string } }>(
      "POST",
      `/v1/sandboxes/${id}/exec`,
      '{"cmd":"true","env":{"__proto__":"x"}}',
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toContain("__proto__");
    const broken = await api.call<{ error: { message: string } }>(
      "POST",
      `/v1/sandboxes/${id}/exec`,
      '{"cmd":',
    );
    expect(broken.status).toBe(400);
    expect(broken.body.error.message).toBe("the body is not valid JSON");
  });
});
