import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t?.close();
});

describe("auth and users", () => {
  it("answers /healthz without a key", async () => {
    const response = await fetch(`${t.url}/healthz`);
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body).toEqual({
      status: "ok",
      driver: "namespace",
      features: expect.any(Array),
      drivers: [{ name: "namespace", features: body.features, default: true }],
    });
    // The driver's features, so a client (the dashboard) can tell what stop, start and fork will do.
    expect(body.features).toContain("hibernate");
  });

  it("refuses /v1 without a key or with a wrong key, with a stable code", async () => {
    const none = await fetch(`${t.url}/v1/sandboxes`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const wrong = await t.api.withKey("pdk_not-a-real-key").call("GET", "/v1/sandboxes");
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ error: { code: "unauthorized" } });
  });

  it("writes the first admin key into the data dir with mode 600 and stores only its hash", async () => {
    const { readFile, stat } = await import("node:fs/promises");
    const keyFile = `${t.dataDir}/admin-api-key`;
    expect((await readFile(keyFile, "utf8")).trim()).toBe(t.adminKey);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    await t.server.store.users.count();
    const db = await readFile(`${t.dataDir}/polydev.db`);
    const wal = await readFile(`${t.dataDir}/polydev.db-wal`).catch(() => Buffer.alloc(0));
    expect(Buffer.concat([db, wal]).includes(Buffer.from(t.adminKey))).toBe(false);
  });

  it("lets the admin create users; users cannot use admin routes", async () => {
    const alice = await createUser(t.api, "alice");
    const me = await alice.call("GET", "/v1/me");
    expect(me.body).toMatchObject({ name: "alice", role: "user" });
    const denied = await alice.call("POST", "/v1/admin/users", { name: "mallory" });
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ error: { code: "forbidden" } });
    const duplicate = await t.api.call("POST", "/v1/admin/users", { name: "alice" });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body).toMatchObject({ error: { code: "conflict" } });
  });

  it("rejects bad user input with 400 invalid_request and a message naming the field", async () => {
    const bad = await t.api.call<{ error: { code: string; message: string } }>("POST", "/v1/admin/users", {
      name: "Bad Name!",
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
    expect(bad.body.error.message).toContain("name");
  });

  it("serves an OpenAPI document generated from the route schemas", async () => {
    const doc = await t.api.call<{
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, unknown> };
    }>("GET", "/v1/openapi.json");
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        "/v1/sandboxes",
        "/v1/sandboxes/{id}/exec",
        "/v1/sandboxes/{id}/files/content",
      ]),
    );
    // The create body is a named component, generated from the same zod schema that validates.
    const create = JSON.stringify(doc.body.paths["/v1/sandboxes"]?.post);
    expect(create).toContain("#/components/schemas/CreateSandbox");
    expect(JSON.stringify(doc.body.components.schemas.CreateSandboxInput)).toContain("memoryMb");
  });

  it("serves the OpenAPI document and an API reference page over it without a key", async () => {
    const doc = await fetch(`${t.url}/v1/openapi.json`);
    expect(doc.status).toBe(200);
    expect(((await doc.json()) as { openapi: string }).openapi).toMatch(/^3\./);
    // Only that document is public: its neighbours still need a key.
    expect((await fetch(`${t.url}/v1/sandboxes`)).status).toBe(401);

    const page = await fetch(`${t.url}/api-reference`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    const loaded = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? "");
    expect(loaded).toEqual([
      "/api-reference/swagger-ui.css",
      "/api-reference/swagger-ui-bundle.js",
      "/api-reference/start.js",
    ]);
    for (const path of loaded) {
      const asset = await fetch(`${t.url}${path}`);
      expect(asset.status, path).toBe(200);
      expect((await asset.text()).length, path).toBeGreaterThan(20);
    }
    expect(await (await fetch(`${t.url}/api-reference/start.js`)).text()).toContain('"/v1/openapi.json"');
    // Nothing else of the package (nor anything beside it) is served.
    for (const path of [
      "/api-reference/package.json",
      "/api-reference/__proto__",
      "/api-reference/..%2Fpackage.json",
      "/api-reference/%2e%2e%2f%2e%2e%2fpackage.json",
    ]) {
      expect((await fetch(`${t.url}${path}`)).status, path).toBe(404);
    }
  });

  it("answers unknown routes and bad JSON with 4xx errors, never 500", async () => {
    const missing = await t.api.call("GET", "/v1/nope");
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: { code: "not_found" } });
    const badJson = await t.api.call("POST", "/v1/sandboxes", "{not json", {
      "content-type": "application/json",
    });
    expect(badJson.status).toBe(400);
    expect(badJson.body).toMatchObject({ error: { code: "invalid_request" } });
  });
});
