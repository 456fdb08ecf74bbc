import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

let t: TestServer;
let alice: ApiClient;
let bob: ApiClient;
let aliceSandbox: string;
let aliceProcess: string;
beforeAll(async () => {
  t = await startTestServer();
  alice = await createUser(t.api, "alice");
  bob = await createUser(t.api, "bob");
  aliceSandbox = await alice.createSandbox();
  const started = await alice.call<{ id: string }>("POST", `/v1/sandboxes/${aliceSandbox}/processes`, {
    cmd: "sleep 60",
  });
  aliceProcess = started.body.id;
});
afterAll(async () => {
  await t?.close();
});

describe("a user only sees their own sandboxes", () => {
  const routes: [string, (id: string, pid: string) => string, unknown?][] = [
    ["GET", (id) => `/v1/sandboxes/${id}`],
    ["DELETE", (id) => `/v1/sandboxes/${id}`],
    ["POST", (id) => `/v1/sandboxes/${id}/exec`, { cmd: "id" }],
    ["POST", (id) => `/v1/sandboxes/${id}/hibernate`],
    ["POST", (id) => `/v1/sandboxes/${id}/resume`],
    ["GET", (id) => `/v1/sandboxes/${id}/logs`],
    ["GET", (id) => `/v1/sandboxes/${id}/stats`],
    ["GET", (id) => `/v1/sandboxes/${id}/processes`],
    ["POST", (id) => `/v1/sandboxes/${id}/processes`, { cmd: "id" }],
    ["GET", (id, pid) => `/v1/sandboxes/${id}/processes/${pid}`],
    ["GET", (id, pid) => `/v1/sandboxes/${id}/processes/${pid}/output`],
    ["POST", (id, pid) => `/v1/sandboxes/${id}/processes/${pid}/signal`, { signal: "SIGKILL" }],
    ["GET", (id) => `/v1/sandboxes/${id}/files?path=.`],
    ["GET", (id) => `/v1/sandboxes/${id}/files/stat?path=.`],
    ["GET", (id) => `/v1/sandboxes/${id}/files/content?path=x`],
    ["PUT", (id) => `/v1/sandboxes/${id}/files/content?path=x`, "data"],
    ["POST", (id) => `/v1/sandboxes/${id}/files/mkdir`, { path: "d" }],
    ["DELETE", (id) => `/v1/sandboxes/${id}/files?path=x`],
    ["GET", (id) => `/v1/sandboxes/${id}/pty`],
  ];

  it.each(routes)("%s %s answers 404 for another user's sandbox", async (method, path, body) => {
    const headers: Record<string, string> =
      typeof body === "string" ? { "content-type": "application/octet-stream" } : {};
    const response = await bob.call(method, path(aliceSandbox, aliceProcess), body, headers);
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ error: { code: "not_found" } });
  });

  it("does not list another user's sandboxes", async () => {
    const list = await bob.call<{ items: { id: string }[] }>("GET", "/v1/sandboxes");
    expect(list.body.items.map((s) => s.id)).not.toContain(aliceSandbox);
  });

  it("refuses a terminal WebSocket for another user's sandbox before upgrading", async () => {
    const url = `${t.url.replace("http", "ws")}/v1/sandboxes/${aliceSandbox}/pty`;
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${bob.key}` } });
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => resolve(101));
    });
    expect(status).toBe(404);
  });

  it("left alice's sandbox and process untouched", async () => {
    const sandbox = await alice.call<{ state: string }>("GET", `/v1/sandboxes/${aliceSandbox}`);
    expect(sandbox.body.state).toBe("running");
    const process = await alice.call<{ state: string }>(
      "GET",
      `/v1/sandboxes/${aliceSandbox}/processes/${aliceProcess}`,
    );
    expect(process.body.state).toBe("running");
    const file = await alice.call("GET", `/v1/sandboxes/${aliceSandbox}/files/stat?path=x`);
    expect(file.status).toBe(404);
  });
});
