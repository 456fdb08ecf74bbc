/**
 * Dashboard sign-in against a real server and a real SQLite file: cookies, CSRF, Origin checks on
 * WebSocket upgrades, expiry, sign-out, the failure throttle and what reaches the database file.
 */
import { readdir, readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import type { Clock } from "@polydev/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { TestServer } from "./testing/harness.js";
import { startTestServer } from "./testing/harness.js";

const ADMIN_PASSWORD = "correct horse battery staple";
const WINDOW_MS = 60_000;
const IDLE_MS = 60 * 60_000;
const MAX_AGE_MS = 4 * 60 * 60_000;

class ManualClock implements Clock {
  #now = Date.now();
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}

interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
  headers: Headers;
}

let t: TestServer;
const clock = new ManualClock();

/** A browser-like client: no bearer, only the cookie it was given. */
async function call(
  method: string,
  path: string,
  options: { cookie?: string; csrf?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.cookie !== undefined) headers.cookie = options.cookie;
  if (options.csrf !== undefined) headers["x-csrf-token"] = options.csrf;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${t.url}${path}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {}, headers: response.headers };
}

async function signIn(
  body: Record<string, string>,
): Promise<{ cookie: string; csrf: string; answer: Answer }> {
  const answer = await call("POST", "/v1/auth/session", { body });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  const setCookie = answer.headers.getSetCookie().find((c) => c.startsWith("polydev_session="));
  if (!setCookie) throw new Error("no session cookie");
  return { cookie: setCookie.split(";")[0] ?? "", csrf: String(answer.body.csrfToken), answer };
}

async function createUser(name: string, password?: string): Promise<{ id: string; apiKey: string }> {
  const created = await t.api.call<{ user: { id: string }; apiKey: string }>("POST", "/v1/admin/users", {
    name,
    ...(password === undefined ? {} : { password }),
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return { id: created.body.user.id, apiKey: created.body.apiKey };
}

/** Opens the PTY WebSocket and reports the HTTP status the upgrade was refused with (or 101). */
function upgradeStatus(
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${t.url.replace("http", "ws")}${path}`, { headers });
    ws.once("open", () => {
      ws.close();
      resolve({ status: 101, body: "" });
    });
    ws.once("unexpected-response", (request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on("end", () => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0, body });
      });
    });
    ws.once("error", (error) => {
      if (!/Unexpected server response/.test(String(error))) reject(error);
    });
  });
}

beforeAll(async () => {
  t = await startTestServer(
    {
      adminPassword: ADMIN_PASSWORD,
      // Request logs on, so the test can check no secret reaches them.
      logLevel: "info",
      sessionIdleTimeoutMs: IDLE_MS,
      sessionMaxAgeMs: MAX_AGE_MS,
      signInThrottle: { maxFailuresPerName: 3, maxFailuresPerIp: 8, windowMs: WINDOW_MS },
    },
    { clock },
  );
});
afterAll(async () => {
  await t?.close();
});
// Every case starts with a clean throttle: earlier failures have left the window.
beforeEach(() => clock.advance(WINDOW_MS + 1));

describe("signing in", () => {
  it("signs in with the password from POLYDEV_ADMIN_PASSWORD and sets a strict HttpOnly cookie", async () => {
    const { cookie, csrf, answer } = await signIn({ name: "admin", password: ADMIN_PASSWORD });
    expect(answer.body.user).toMatchObject({ name: "admin", role: "admin" });
    expect(csrf.length).toBeGreaterThan(20);
    const setCookie = answer.headers.getSetCookie().find((c) => c.startsWith("polydev_session=")) ?? "";
    expect(setCookie).toMatch(/; HttpOnly/i);
    expect(setCookie).toMatch(/; SameSite=Strict/i);
    expect(setCookie).toMatch(/; Path=\//);
    // Plain http to 127.0.0.1: a Secure cookie would be dropped by the browser.
    expect(setCookie).not.toMatch(/; Secure/i);

    const me = await call("GET", "/v1/me", { cookie });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ name: "admin", role: "admin" });
    const session = await call("GET", "/v1/auth/session", { cookie });
    expect(session.status).toBe(200);
    expect(session.body).toEqual({ user: answer.body.user, csrfToken: csrf });
    expect(answer.headers.get("cache-control")).toBe("no-store");
    expect(session.headers.get("cache-control")).toBe("no-store");
  });

  it("marks the cookie Secure when the request was not plain http to a loopback host", async () => {
    // fetch() will not send a Host of our choosing; node:http will.
    const url = new URL(t.url);
    const setCookie = await new Promise<string[]>((resolve, reject) => {
      const request = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          method: "POST",
          path: "/v1/auth/session",
          headers: { host: "polydev.example.com", "content-type": "application/json" },
        },
        (response) => {
          response.resume();
          expect(response.statusCode).toBe(200);
          resolve(response.headers["set-cookie"] ?? []);
        },
      );
      request.on("error", reject);
      request.end(JSON.stringify({ name: "admin", password: ADMIN_PASSWORD }));
    });
    expect(setCookie.find((c) => c.startsWith("polydev_session="))).toMatch(/; Secure/i);
  });

  it("takes the user name in any case", async () => {
    const { answer } = await signIn({ name: "Admin", password: ADMIN_PASSWORD });
    expect(answer.body.user).toMatchObject({ name: "admin" });
  });

  it("signs in with an API key", async () => {
    const { cookie, answer } = await signIn({ apiKey: t.adminKey });
    expect(answer.body.user).toMatchObject({ name: "admin" });
    expect((await call("GET", "/v1/admin/users", { cookie })).status).toBe(200);
  });

  it("answers an unknown name and a wrong password with the same 401", async () => {
    await createUser("keyonly");
    const unknown = await call("POST", "/v1/auth/session", {
      body: { name: "nobody", password: "whatever1" },
    });
    const wrong = await call("POST", "/v1/auth/session", {
      body: { name: "admin", password: "not it at all" },
    });
    const noPassword = await call("POST", "/v1/auth/session", {
      body: { name: "keyonly", password: "anything1" },
    });
    for (const answer of [unknown, wrong, noPassword]) {
      expect(answer.status).toBe(401);
      expect(answer.headers.getSetCookie()).toEqual([]);
    }
    expect(unknown.body).toEqual(wrong.body);
    expect(noPassword.body).toEqual(wrong.body);
    expect(wrong.body.error).toEqual({ code: "invalid_credentials", message: "wrong user name or password" });
    const badKey = await call("POST", "/v1/auth/session", { body: { apiKey: "pdk_not-a-key" } });
    expect(badKey.status).toBe(401);
    expect(badKey.body.error?.code).toBe("invalid_credentials");
  });

  it("refuses a malformed body and a sign-in posted from another site", async () => {
    const empty = await call("POST", "/v1/auth/session", { body: {} });
    expect(empty.status).toBe(400);
    expect(empty.body.error?.code).toBe("invalid_request");
    const crossSite = await call("POST", "/v1/auth/session", {
      body: { name: "admin", password: ADMIN_PASSWORD },
      headers: { origin: "https://evil.example" },
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.body.error?.code).toBe("csrf_failed");
    expect(crossSite.headers.getSetCookie()).toEqual([]);
  });

  it("answers 401 without any credentials, and for a cookie that was never issued", async () => {
    expect((await call("GET", "/v1/auth/session")).body.error?.code).toBe("unauthorized");
    const forged = await call("GET", "/v1/me", { cookie: "polydev_session=forged" });
    expect(forged.status).toBe(401);
    expect(forged.body.error?.code).toBe("unauthorized");
  });
});

describe("CSRF", () => {
  it("refuses unsafe methods by cookie without the right x-csrf-token, and accepts the right one", async () => {
    const user = await createUser("csrf-user", "password-csrf");
    const { cookie, csrf } = await signIn({ name: "csrf-user", password: "password-csrf" });
    const body = { password: "a-new-password" };
    for (const token of [undefined, "wrong", `${csrf}x`]) {
      const refused = await call("PUT", "/v1/me/password", {
        cookie,
        body: { currentPassword: "password-csrf", ...body },
        ...(token === undefined ? {} : { csrf: token }),
      });
      expect(refused.status).toBe(403);
      expect(refused.body.error?.code).toBe("csrf_failed");
    }
    // Nothing changed: the old password still signs in.
    await signIn({ name: "csrf-user", password: "password-csrf" });
    const changed = await call("PUT", "/v1/me/password", {
      cookie,
      csrf,
      body: { currentPassword: "password-csrf", ...body },
    });
    expect(changed.status).toBe(204);
    await signIn({ name: "csrf-user", password: "a-new-password" });
    expect(user.id).toMatch(/^usr_/);
  });

  it("does not ask API-key clients for a CSRF token", async () => {
    const answer = await t.api.call("PUT", "/v1/admin/users/usr_missing/proxy", { proxyUrl: null });
    expect(answer.status).toBe(404);
  });

  it("refuses a cookie-authenticated WebSocket upgrade from another origin", async () => {
    const { cookie } = await signIn({ name: "admin", password: ADMIN_PASSWORD });
    const path = "/v1/sandboxes/sbx_missing/pty";
    const host = new URL(t.url).host;
    const crossOrigin = await upgradeStatus(path, { cookie, origin: "https://evil.example" });
    expect(crossOrigin.status).toBe(403);
    expect(JSON.parse(crossOrigin.body).error.code).toBe("csrf_failed");
    const noOrigin = await upgradeStatus(path, { cookie });
    expect(noOrigin.status).toBe(403);
    // Same origin passes authentication and reaches the route: the sandbox does not exist.
    const sameOrigin = await upgradeStatus(path, { cookie, origin: `http://${host}` });
    expect(sameOrigin.status).toBe(404);
    expect(JSON.parse(sameOrigin.body).error.code).toBe("not_found");
  });
});

describe("session lifetime", () => {
  it("signs out: the session row is deleted and the old cookie answers 401", async () => {
    const { cookie, csrf } = await signIn({ name: "admin", password: ADMIN_PASSWORD });
    const out = await call("DELETE", "/v1/auth/session", { cookie, csrf });
    expect(out.status).toBe(204);
    const cleared = out.headers.getSetCookie().find((c) => c.startsWith("polydev_session=")) ?? "";
    expect(cleared).toMatch(/^polydev_session=;/);
    expect(cleared).toMatch(/Max-Age=0|Expires=Thu, 01 Jan 1970/i);
    const after = await call("GET", "/v1/me", { cookie });
    expect(after.status).toBe(401);
  });

  it("ends a session left idle too long, and one past its absolute age even when used", async () => {
    const idle = await signIn({ name: "admin", password: ADMIN_PASSWORD });
    clock.advance(IDLE_MS - 1000);
    expect((await call("GET", "/v1/me", { cookie: idle.cookie })).status).toBe(200);
    // Used a moment ago: the idle clock restarted.
    clock.advance(IDLE_MS - 1000);
    expect((await call("GET", "/v1/me", { cookie: idle.cookie })).status).toBe(200);
    clock.advance(IDLE_MS + 1);
    expect((await call("GET", "/v1/me", { cookie: idle.cookie })).status).toBe(401);

    const busy = await signIn({ name: "admin", password: ADMIN_PASSWORD });
    for (let used = 0; used < MAX_AGE_MS; used += IDLE_MS / 2) {
      expect((await call("GET", "/v1/me", { cookie: busy.cookie })).status).toBe(200);
      clock.advance(IDLE_MS / 2);
    }
    const expired = await call("GET", "/v1/me", { cookie: busy.cookie });
    expect(expired.status).toBe(401);
    expect(expired.body.error?.code).toBe("unauthorized");
  });

  it("signs out the user's other sessions when the password changes", async () => {
    await createUser("two-browsers", "first-password");
    const first = await signIn({ name: "two-browsers", password: "first-password" });
    const second = await signIn({ name: "two-browsers", password: "first-password" });
    const changed = await call("PUT", "/v1/me/password", {
      cookie: first.cookie,
      csrf: first.csrf,
      body: { currentPassword: "first-password", password: "second-password" },
    });
    expect(changed.status).toBe(204);
    expect((await call("GET", "/v1/me", { cookie: first.cookie })).status).toBe(200);
    expect((await call("GET", "/v1/me", { cookie: second.cookie })).status).toBe(401);
  });
});

describe("passwords", () => {
  it("needs the current password once one is set, and checks it", async () => {
    const user = await createUser("pw-user");
    const api = t.api.withKey(user.apiKey);
    expect((await api.call("PUT", "/v1/me/password", { password: "short" })).status).toBe(400);
    expect((await api.call("PUT", "/v1/me/password", { password: "first-password" })).status).toBe(204);
    const missing = await api.call<Answer["body"]>("PUT", "/v1/me/password", { password: "second-password" });
    expect(missing.status).toBe(400);
    expect(missing.body.error?.message).toMatch(/currentPassword/);
    const wrong = await api.call<Answer["body"]>("PUT", "/v1/me/password", {
      currentPassword: "not-the-password",
      password: "second-password",
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error?.code).toBe("invalid_credentials");
    await signIn({ name: "pw-user", password: "first-password" });
  });

  it("refuses an admin-set password outside 8–200 characters", async () => {
    const short = await t.api.call("POST", "/v1/admin/users", { name: "shorty", password: "1234567" });
    expect(short.status).toBe(400);
    const long = await t.api.call("POST", "/v1/admin/users", { name: "longy", password: "x".repeat(201) });
    expect(long.status).toBe(400);
  });
});

describe("failure throttle", () => {
  it("answers 429 with Retry-After once a name failed too often, even for the right password", async () => {
    await createUser("target", "the-right-password");
    for (let i = 0; i < 3; i++) {
      const wrong = await call("POST", "/v1/auth/session", {
        body: { name: "target", password: `guess-${i}` },
      });
      expect(wrong.status).toBe(401);
    }
    const blocked = await call("POST", "/v1/auth/session", {
      body: { name: "target", password: "the-right-password" },
    });
    expect(blocked.status).toBe(429);
    expect(blocked.body.error?.code).toBe("too_many_attempts");
    const retryAfter = Number(blocked.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(WINDOW_MS / 1000);
    // Another name from the same address is not locked by this name's failures.
    await signIn({ name: "admin", password: ADMIN_PASSWORD });
    clock.advance(retryAfter * 1000);
    await signIn({ name: "target", password: "the-right-password" });
  });

  it("answers 429 once one address failed too often across many names", async () => {
    for (let i = 0; i < 8; i++) {
      const wrong = await call("POST", "/v1/auth/session", {
        body: { name: `spray-${i}`, password: "password1" },
      });
      expect(wrong.status).toBe(401);
    }
    const blocked = await call("POST", "/v1/auth/session", {
      body: { name: "admin", password: ADMIN_PASSWORD },
    });
    expect(blocked.status).toBe(429);
    const byKey = await call("POST", "/v1/auth/session", { body: { apiKey: t.adminKey } });
    expect(byKey.status).toBe(429);
  });
});

describe("isolation and storage", () => {
  it("a cookie reaches only its own user's resources, and no admin route for a plain user", async () => {
    const sandboxId = await t.api.createSandbox({ network: "none" });
    await createUser("user-b", "password-b");
    const b = await signIn({ name: "user-b", password: "password-b" });
    const foreign = await call("GET", `/v1/sandboxes/${sandboxId}`, { cookie: b.cookie });
    expect(foreign.status).toBe(404);
    const destroy = await call("DELETE", `/v1/sandboxes/${sandboxId}`, { cookie: b.cookie, csrf: b.csrf });
    expect(destroy.status).toBe(404);
    const list = await call("GET", "/v1/sandboxes", { cookie: b.cookie });
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([]);
    for (const path of ["/v1/admin/users", "/v1/admin/sandboxes", "/v1/admin/stats"]) {
      const answer = await call("GET", path, { cookie: b.cookie });
      expect(answer.status, path).toBe(403);
      expect(answer.body.error?.code).toBe("forbidden");
    }
    const adminSees = await t.api.call("GET", `/v1/sandboxes/${sandboxId}`);
    expect(adminSees.status).toBe(200);
    await t.api.call("DELETE", `/v1/sandboxes/${sandboxId}`);
  });

  it("keeps neither session tokens nor passwords in the database file", async () => {
    const password = "plain-text-canary-password";
    await createUser("canary", password);
    const { cookie } = await signIn({ name: "canary", password });
    const token = cookie.slice("polydev_session=".length);
    expect(token.length).toBeGreaterThan(30);
    const files = (await readdir(t.dataDir)).filter((f) => f.startsWith("polydev.db"));
    expect(files).toContain("polydev.db");
    const bytes = Buffer.concat(await Promise.all(files.map((f) => readFile(join(t.dataDir, f)))));
    expect(bytes.includes(Buffer.from(token))).toBe(false);
    expect(bytes.includes(Buffer.from(password))).toBe(false);
    expect(bytes.includes(Buffer.from(ADMIN_PASSWORD))).toBe(false);
    // The rows are there, as hashes.
    expect(bytes.includes(Buffer.from("scrypt$"))).toBe(true);
    const log = await readFile(t.logFile, "utf8");
    expect(log.includes(token)).toBe(false);
    expect(log.includes(password)).toBe(false);
    // Failed sign-ins are logged for the operator, without the password that was tried.
    expect(log).toContain('"msg":"sign-in failed"');
    expect(log).toContain('"userName":"target"');
    expect(log.includes("not it at all")).toBe(false);
    expect(log.includes("guess-0")).toBe(false);
  });
});
