/** The dashboard's files, SPA fallback, the not-built page and security headers, from a real server. */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.js";
import type { TestServer } from "./testing/harness.js";
import { startTestServer } from "./testing/harness.js";

const INDEX =
  '<!doctype html><html><head><script type="module" src="/assets/app-3f9a.js"></script></head><body>polydev-spa</body></html>';
const SCRIPT = "console.log('dashboard');";
const SECRET = "outside-the-web-dir";
const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

let scratch: string;
let built: TestServer;
let unbuilt: TestServer;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "polydev-web-"));
  const webDir = join(scratch, "dist");
  await mkdir(join(webDir, "assets"), { recursive: true });
  await writeFile(join(webDir, "index.html"), INDEX);
  await writeFile(join(webDir, "assets", "app-3f9a.js"), SCRIPT);
  await writeFile(join(webDir, "favicon.svg"), "<svg/>");
  await writeFile(join(scratch, "secret.txt"), SECRET);
  await mkdir(join(scratch, "empty"));
  built = await startTestServer({ webDir });
  unbuilt = await startTestServer({ webDir: join(scratch, "empty") });
});
afterAll(async () => {
  await built?.close();
  await unbuilt?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const get = (server: TestServer, path: string, accept = BROWSER_ACCEPT) =>
  fetch(`${server.url}${path}`, { headers: { accept } });

function expectSecurityHeaders(response: Response): void {
  const csp = response.headers.get("content-security-policy") ?? "";
  expect(csp).toContain("default-src 'self'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
  expect(response.headers.get("x-frame-options")).toBe("DENY");
  expect(response.headers.get("x-content-type-options")).toBe("nosniff");
  expect(response.headers.get("referrer-policy")).toBe("no-referrer");
}

describe("serving the dashboard", () => {
  it("serves index.html at / with security headers and no long-lived caching", async () => {
    const response = await get(built, "/");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await response.text()).toBe(INDEX);
    expectSecurityHeaders(response);
    expect(response.headers.get("cache-control")).toMatch(/max-age=0/);
    // curl and other clients that send no text/html still get the dashboard at the root.
    const plain = await get(built, "/", "*/*");
    expect(plain.status).toBe(200);
    expect(await plain.text()).toBe(INDEX);
  });

  it("serves assets with their type and immutable caching", async () => {
    const response = await get(built, "/assets/app-3f9a.js", "*/*");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/javascript/);
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("cache-control")).toMatch(/immutable/);
    expect(await response.text()).toBe(SCRIPT);
    const icon = await get(built, "/favicon.svg", "image/*");
    expect(icon.status).toBe(200);
    expect(icon.headers.get("content-type")).toMatch(/^image\/svg\+xml/);
  });

  it("answers client-side routes with index.html when the browser asks for a page", async () => {
    for (const path of ["/sandboxes/sbx_123", "/admin", "/runs/run_1?tab=events"]) {
      const response = await get(built, path);
      expect(response.status, path).toBe(200);
      expect(await response.text()).toBe(INDEX);
      expectSecurityHeaders(response);
    }
  });

  it("keeps 404s for missing assets, non-page requests and the API", async () => {
    const missingAsset = await get(built, "/assets/gone-1234.js", "*/*");
    expect(missingAsset.status).toBe(404);
    const json = await get(built, "/sandboxes/sbx_123", "application/json");
    expect(json.status).toBe(404);
    const api = await get(built, "/v1/no-such-route");
    expect(api.status).toBe(401);
    const apiWithKey = await fetch(`${built.url}/v1/no-such-route`, {
      headers: { accept: BROWSER_ACCEPT, authorization: `Bearer ${built.adminKey}` },
    });
    expect(apiWithKey.status).toBe(404);
    expect(((await apiWithKey.json()) as { error: { code: string } }).error.code).toBe("not_found");
    const health = await get(built, "/healthz");
    expect(health.headers.get("content-type")).toMatch(/json/);
    expect(await health.json()).toMatchObject({ status: "ok" });
  });

  it("never serves a file outside the web directory", async () => {
    // fetch() would normalise the dot segments away; node:http sends the path as written.
    const url = new URL(built.url);
    const rawGet = (path: string) =>
      new Promise<{ status: number; body: string }>((resolveAnswer, reject) => {
        httpGet(
          { host: url.hostname, port: url.port, path, headers: { accept: BROWSER_ACCEPT } },
          (response) => {
            let body = "";
            response.on("data", (chunk: Buffer) => {
              body += chunk.toString();
            });
            response.on("end", () => resolveAnswer({ status: response.statusCode ?? 0, body }));
          },
        ).on("error", reject);
      });
    for (const path of [
      "/../secret.txt",
      "/assets/../../secret.txt",
      "/%2e%2e/secret.txt",
      "/..%2fsecret.txt",
      "/assets/..%2f..%2fsecret.txt",
    ]) {
      const answer = await rawGet(path);
      expect(answer.body, path).not.toContain(SECRET);
      expect(answer.body, path).toBe(INDEX);
    }
    const malformed = await rawGet("/%E0%A4%A");
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.body).error.code).toBe("invalid_request");
  });

  it("shows a page saying how to build the dashboard when the web dir has no index.html", async () => {
    for (const path of ["/", "/sandboxes"]) {
      const response = await get(unbuilt, path);
      expect(response.status).toBe(503);
      expect(response.headers.get("content-type")).toMatch(/^text\/html/);
      expect(await response.text()).toContain("npm run build -w @polydev/web");
      expectSecurityHeaders(response);
    }
    expect((await get(unbuilt, "/healthz")).status).toBe(200);
  });

  it("defaults the web dir to packages/web/dist of this checkout", () => {
    const config = parseConfig({ dataDir: join(tmpdir(), "unused") });
    expect(config.webDir).toBe(resolve(import.meta.dirname, "../../web/dist"));
    expect(parseConfig({ dataDir: "/x", webDir: "relative/dir" }).webDir).toBe(resolve("relative/dir"));
  });
});
