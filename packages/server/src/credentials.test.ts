import { readFile } from "node:fs/promises";
import type { IncomingHttpHeaders, Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

const REAL_KEY = "sk-ant-api03-REAL-SECRET-0123456789";
const OTHER_KEY = "sk-ant-api03-WRONG-KEY-9876543210";

/** A stand-in provider on loopback: Anthropic-shaped answers, and a record of what arrived. */
let upstream: Server;
const seen: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
let t: TestServer;
let alice: ApiClient;
let bob: ApiClient;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on("end", () => {
      seen.push({ url: req.url ?? "", headers: req.headers, body });
      if (req.headers["x-api-key"] !== REAL_KEY) {
        res.writeHead(401, { "content-type": "application/json" }).end('{"type":"error"}');
        return;
      }
      // A model name the provider does not know: refused without naming a model, so the
      // gateway can only record the one the request claimed.
      if (body.includes('"model":"mmmm')) {
        res.writeHead(400, { "content-type": "application/json" }).end('{"type":"error"}');
        return;
      }
      if (req.url?.startsWith("/v1/models")) {
        res.writeHead(200, { "content-type": "application/json" }).end('{"data":[]}');
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream" });
      const start = {
        type: "message_start",
        message: { model: "claude-fake", usage: { input_tokens: 12, output_tokens: 1 } },
      };
      res.write(`event: message_start\ndata: ${JSON.stringify(start)}\n\n`);
      res.write(
        `event: message_delta\ndata: ${JSON.stringify({ type: "message_delta", usage: { output_tokens: 4 } })}\n\n`,
      );
      res.end("event: message_stop\ndata: {}\n\n");
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  t = await startTestServer({ upstreams: { anthropic: url, openai: url, gemini: url }, logLevel: "trace" });
  alice = await createUser(t.api, "alice");
  bob = await createUser(t.api, "bob");
});
afterAll(async () => {
  await t?.close();
  upstream?.close();
});

describe("credentials API", () => {
  it("stores a key encrypted and shows only metadata", async () => {
    const put = await alice.call("PUT", "/v1/credentials/anthropic", { apiKey: REAL_KEY });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ provider: "anthropic", kind: "api_key", valid: null });
    const list = await alice.call<{ items: unknown[] }>("GET", "/v1/credentials");
    expect(list.body.items).toHaveLength(1);
    expect(JSON.stringify(list.body)).not.toContain("REAL-SECRET");
    expect((await bob.call<{ items: unknown[] }>("GET", "/v1/credentials")).body.items).toEqual([]);
  });

  it.each([
    ["/v1/credentials/anthropics", { apiKey: REAL_KEY }, "provider"],
    ["/v1/credentials/openai", { apiKey: "" }, "apiKey"],
    ["/v1/credentials/openai", { apiKey: "x".repeat(5000) }, "apiKey"] as const,
    ["/v1/credentials/openai", { apiKey: "has spaces in it" }, "apiKey"],
    ["/v1/credentials/openai", { key: REAL_KEY }, "key"],
  ])("rejects PUT %s with a bad body (400 naming %$)", async (path, body, field) => {
    const response = await alice.call<{ error: { code: string; message: string } }>("PUT", path, body);
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("invalid_request");
    expect(response.body.error.message).toContain(field);
  });

  it("validates against the provider and records the answer", async () => {
    const good = await alice.call("POST", "/v1/credentials/anthropic/validate");
    expect(good.body).toMatchObject({ valid: true });
    await bob.call("PUT", "/v1/credentials/anthropic", { apiKey: OTHER_KEY });
    const bad = await bob.call("POST", "/v1/credentials/anthropic/validate");
    expect(bad.body).toMatchObject({ valid: false });
    const missing = await bob.call("POST", "/v1/credentials/gemini/validate");
    expect(missing.status).toBe(404);
  });

  it("the credential-validation job marks a key the provider refuses as invalid and keeps it", async () => {
    const carol = await createUser(t.api, "validation-job-user");
    await carol.call("PUT", "/v1/credentials/anthropic", { apiKey: OTHER_KEY });
    await carol.call("PUT", "/v1/credentials/openai", { apiKey: REAL_KEY });
    expect(await t.server.jobs.runNow("credential-validation", { force: true })).toBe("ran");
    const listed = await carol.call<{ items: { provider: string; valid: boolean | null }[] }>(
      "GET",
      "/v1/credentials",
    );
    // The fake upstream only knows Anthropic's header: the OpenAI key gets a 401 there too.
    expect(listed.body.items.map((c) => [c.provider, c.valid]).sort()).toEqual([
      ["anthropic", false],
      ["openai", false],
    ]);
    const mine = await alice.call<{ items: { provider: string; valid: boolean | null }[] }>(
      "GET",
      "/v1/credentials",
    );
    expect(mine.body.items).toEqual([expect.objectContaining({ provider: "anthropic", valid: true })]);
    const jobs = await t.api.call<{ items: { job: string; outcome: string }[] }>("GET", "/v1/admin/jobs");
    expect(jobs.body.items).toContainEqual(
      expect.objectContaining({ job: "credential-validation", outcome: "succeeded" }),
    );
  });

  it("never writes the plaintext into the database file or the log", async () => {
    const files = [`${t.dataDir}/polydev.db`, `${t.dataDir}/polydev.db-wal`, t.logFile];
    for (const file of files) {
      const bytes = await readFile(file).catch(() => Buffer.alloc(0));
      expect(bytes.includes(Buffer.from("REAL-SECRET")), file).toBe(false);
    }
  });
});

describe("provider gateway from inside a sandbox", () => {
  it("swaps the sandbox's placeholder for the owner's key, streams back, and counts usage", async () => {
    const id = await alice.createSandbox();
    const opened = await alice.call<{ port: number }>("POST", `/v1/sandboxes/${id}/gateway`);
    expect(opened.status).toBe(200);
    const call = await alice.exec(
      id,
      `curl -sS -N "$ANTHROPIC_BASE_URL/v1/messages" -H "x-api-key: $ANTHROPIC_API_KEY" -H 'content-type: application/json' -d '{"model":"claude-fake","stream":true,"messages":[]}'`,
    );
    expect(call.body.stdout + call.body.stderr).toContain("message_stop");
    const received = seen.at(-1);
    expect(received?.headers["x-api-key"]).toBe(REAL_KEY);
    expect(received?.url).toBe("/v1/messages");

    // The sandbox only ever holds the placeholder.
    const inside = await alice.exec(id, "env; cat ~/.* 2>/dev/null; true");
    expect(inside.body.stdout).not.toContain("REAL-SECRET");
    expect(inside.body.stdout).toMatch(/ANTHROPIC_API_KEY=pdg_/);

    await expect
      .poll(async () => (await alice.call<{ items: unknown[] }>("GET", "/v1/usage")).body.items)
      .toEqual([
        { provider: "anthropic", model: "claude-fake", requests: 1, inputTokens: 12, outputTokens: 4 },
      ]);
  });

  it("refuses another sandbox's placeholder, and a user without a credential gets a clear 404", async () => {
    const mine = await alice.createSandbox();
    const other = await alice.createSandbox();
    const otherPlaceholder = (await alice.exec(other, "printf %s $ANTHROPIC_API_KEY")).body.stdout;
    await alice.call("POST", `/v1/sandboxes/${mine}/gateway`);
    const before = seen.length;
    const foreign = await alice.exec(
      mine,
      `curl -s -o /dev/null -w '%{http_code}' "$ANTHROPIC_BASE_URL/v1/messages" -H "x-api-key: ${otherPlaceholder}" -d '{}'`,
    );
    expect(foreign.body.stdout).toBe("401");
    expect(seen.length).toBe(before);

    const bobs = await bob.createSandbox();
    await bob.call("DELETE", "/v1/credentials/anthropic");
    await bob.call("POST", `/v1/sandboxes/${bobs}/gateway`);
    const none = await bob.exec(
      bobs,
      `curl -s "$ANTHROPIC_BASE_URL/v1/messages" -H "x-api-key: $ANTHROPIC_API_KEY" -d '{}'`,
    );
    expect(none.body.stdout).toContain("PUT /v1/credentials/anthropic");
    expect(none.body.stdout).not.toContain("REAL-SECRET");
  });

  it("sends a user's provider traffic through the proxy the operator pinned to them, visibly", async () => {
    const connects: string[] = [];
    const proxy = createServer();
    proxy.on("connect", (req, client, head) => {
      connects.push(req.url ?? "");
      const [host, port] = (req.url ?? "").split(":");
      const upstreamSocket = connect(Number(port), host, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstreamSocket.write(head);
        upstreamSocket.pipe(client);
        client.pipe(upstreamSocket);
      });
      upstreamSocket.on("error", () => client.destroy());
      client.on("error", () => upstreamSocket.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const me = await alice.call<{ id: string }>("GET", "/v1/me");
      const bad = await t.api.call("PUT", `/v1/admin/users/${me.body.id}/proxy`, { proxyUrl: "socks5://x" });
      expect(bad.status).toBe(400);
      // Only what the egress side can dial: an https proxy or one with a path is refused here,
      // not stored to fail each of the user's sandbox creates later.
      for (const unusable of ["https://proxy.example:3128", "http://proxy.example:3128/some/path"]) {
        const refused = await t.api.call<{ error: { code: string; message: string } }>(
          "PUT",
          `/v1/admin/users/${me.body.id}/proxy`,
          { proxyUrl: unusable },
        );
        expect(refused.status, unusable).toBe(400);
        expect(refused.body.error.message).toMatch(/http:\/\/\[user:password@\]proxy\.example:3128/);
      }
      expect((await alice.call("PUT", `/v1/admin/users/${me.body.id}/proxy`, { proxyUrl })).status).toBe(403);
      const pinned = await t.api.call("PUT", `/v1/admin/users/${me.body.id}/proxy`, { proxyUrl });
      expect(pinned.status).toBe(200);
      expect((await alice.call("GET", "/v1/me")).body).toMatchObject({ egressProxy: proxyUrl });

      const id = await alice.createSandbox();
      await alice.call("POST", `/v1/sandboxes/${id}/gateway`);
      const call = await alice.exec(
        id,
        `curl -sS "$ANTHROPIC_BASE_URL/v1/messages" -H "x-api-key: $ANTHROPIC_API_KEY" -H 'content-type: application/json' -d '{"model":"m","stream":true,"messages":[]}'`,
      );
      expect(call.body.stdout).toContain("message_stop");
      expect(connects).toEqual([`127.0.0.1:${(upstream.address() as AddressInfo).port}`]);
      await t.api.call("PUT", `/v1/admin/users/${me.body.id}/proxy`, { proxyUrl: null });
      expect((await alice.call("GET", "/v1/me")).body).toMatchObject({ egressProxy: null });
    } finally {
      proxy.close();
    }
  });

  it("holds a sandbox to its request rate and records model names it sends at a bounded length", async () => {
    const carol = await createUser(t.api, "carol");
    expect((await carol.call("PUT", "/v1/credentials/anthropic", { apiKey: REAL_KEY })).status).toBe(200);
    const id = await carol.createSandbox();
    await carol.call("POST", `/v1/sandboxes/${id}/gateway`);
    const longModel = "m".repeat(5000);
    // 200 requests from 10 threads as fast as they go: far above the sustained rate.
    const script = [
      "import os, threading, urllib.request, urllib.error",
      "url = os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages'",
      "key = os.environ['ANTHROPIC_API_KEY']",
      `body = b'{"model":"${longModel}","messages":[]}'`,
      "codes = []",
      "def worker():",
      "    for _ in range(20):",
      "        request = urllib.request.Request(url, data=body, headers={'x-api-key': key, 'content-type': 'application/json'})",
      "        try:",
      "            with urllib.request.urlopen(request) as response: response.read(); codes.append(response.status)",
      "        except urllib.error.HTTPError as error: codes.append(error.code)",
      "        except OSError: codes.append(0)",
      "threads = [threading.Thread(target=worker) for _ in range(10)]",
      "[t.start() for t in threads]; [t.join() for t in threads]",
      "print('\\n'.join(map(str, codes)))",
    ].join("\n");
    const burst = await carol.exec(id, ["python3", "-c", script], { timeoutMs: 120_000 });
    const codes = burst.body.stdout.trim().split("\n");
    expect(codes).toHaveLength(200);
    expect(codes.filter((code) => code === "429").length).toBeGreaterThan(0);
    const usage = await carol.call<{ items: { model: string; requests: number }[] }>("GET", "/v1/usage");
    const [row] = usage.body.items;
    expect(row?.model).toBe("m".repeat(128));
    expect(row?.requests).toBe(codes.filter((code) => code === "400").length);
  }, 150_000);
});
