/**
 * The SDK without an API key, as the dashboard uses it: cookies and the CSRF token. Node's fetch
 * keeps no cookies, so the test hands the SDK a fetch with a cookie jar, which is what a browser
 * adds; it also records what the SDK asked for (credentials mode, headers).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { startTestServer } from "../../server/src/testing/harness.js";
import { Polydev } from "./client.js";
import {
  CsrfFailedError,
  ForbiddenError,
  InvalidCredentialsError,
  TooManyAttemptsError,
  UnauthorizedError,
} from "./errors.js";

interface Sent {
  method: string;
  path: string;
  credentials: RequestCredentials;
  csrf: string | null;
  authorization: string | null;
}

function browserLikeFetch(): { fetch: typeof fetch; sent: Sent[]; jar: Map<string, string> } {
  const jar = new Map<string, string>();
  const sent: Sent[] = [];
  const jarFetch: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    sent.push({
      method: request.method,
      path: new URL(request.url).pathname,
      credentials: request.credentials,
      csrf: request.headers.get("x-csrf-token"),
      authorization: request.headers.get("authorization"),
    });
    const headers = new Headers(request.headers);
    // A browser sends cookies only when asked to include them.
    if (request.credentials === "include" && jar.size > 0) {
      headers.set("cookie", [...jar].map(([name, value]) => `${name}=${value}`).join("; "));
    }
    const response = await fetch(new Request(request, { headers }));
    for (const cookie of response.headers.getSetCookie()) {
      const [pair = ""] = cookie.split(";");
      const [name = "", value = ""] = pair.split("=");
      if (value === "" || /Max-Age=0/i.test(cookie)) jar.delete(name);
      else jar.set(name, value);
    }
    return response;
  };
  return { fetch: jarFetch, sent, jar };
}

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer({
    signInThrottle: { maxFailuresPerName: 2, maxFailuresPerIp: 50, windowMs: 60_000 },
  });
  const created = await t.api.call("POST", "/v1/admin/users", {
    name: "browser-user",
    password: "password-one",
  });
  expect(created.status).toBe(201);
});
afterAll(async () => {
  await t?.close();
});

describe("the SDK in browser mode", () => {
  it("signs in, sends the cookie and never an authorization header, and the CSRF token only on unsafe calls", async () => {
    const browser = browserLikeFetch();
    let csrf: string | undefined;
    const polydev = new Polydev({ baseUrl: t.url, fetch: browser.fetch, csrfToken: () => csrf });

    const session = await polydev.auth.signIn({ name: "browser-user", password: "password-one" });
    expect(session.user).toMatchObject({ name: "browser-user", role: "user" });
    expect(browser.jar.has("polydev_session")).toBe(true);
    expect((await polydev.me()).name).toBe("browser-user");
    expect(await polydev.auth.session()).toEqual(session);

    // Without the token the server refuses an unsafe call; with it the call goes through.
    await expect(
      polydev.auth.setPassword({ currentPassword: "password-one", password: "password-two" }),
    ).rejects.toBeInstanceOf(CsrfFailedError);
    csrf = session.csrfToken;
    await polydev.auth.setPassword({ currentPassword: "password-one", password: "password-two" });

    expect(browser.sent.every((s) => s.credentials === "include")).toBe(true);
    expect(browser.sent.every((s) => s.authorization === null)).toBe(true);
    const gets = browser.sent.filter((s) => s.method === "GET");
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((s) => s.csrf === null)).toBe(true);
    expect(browser.sent.filter((s) => s.method === "PUT").map((s) => s.csrf)).toEqual([
      null,
      session.csrfToken,
    ]);

    await polydev.auth.signOut();
    expect(browser.jar.has("polydev_session")).toBe(false);
    await expect(polydev.auth.session()).rejects.toBeInstanceOf(UnauthorizedError);
    const again = await polydev.auth.signIn({ name: "browser-user", password: "password-two" });
    expect(again.csrfToken).not.toBe(session.csrfToken);
  });

  it("maps sign-in failures to their error classes", async () => {
    const polydev = new Polydev({ baseUrl: t.url, fetch: browserLikeFetch().fetch });
    await expect(polydev.auth.signIn({ name: "nobody", password: "whatever1" })).rejects.toBeInstanceOf(
      InvalidCredentialsError,
    );
    await expect(polydev.auth.signIn({ name: "nobody", password: "whatever1" })).rejects.toBeInstanceOf(
      InvalidCredentialsError,
    );
    const blocked = await polydev.auth
      .signIn({ name: "nobody", password: "whatever1" })
      .catch((e: unknown) => e);
    expect(blocked).toBeInstanceOf(TooManyAttemptsError);
    expect((blocked as TooManyAttemptsError).retryAfterMs).toBeGreaterThan(0);
  });

  it("signs in with an API key, and reaches admin routes only as an admin", async () => {
    const browser = browserLikeFetch();
    const polydev = new Polydev({ baseUrl: t.url, fetch: browser.fetch });
    await polydev.auth.signIn({ apiKey: t.adminKey });
    const users = await polydev.admin.users.list();
    expect(users.items.map((u) => u.name)).toEqual(expect.arrayContaining(["admin", "browser-user"]));
    const stats = await polydev.admin.stats();
    expect(stats.users).toBe(users.items.length);
    expect(stats.runsPerHour).toHaveLength(24);
    expect((await polydev.admin.sandboxes()).items).toEqual([]);

    const asUser = new Polydev({ baseUrl: t.url, fetch: browserLikeFetch().fetch });
    await asUser.auth.signIn({ name: "browser-user", password: "password-two" });
    await expect(asUser.admin.stats()).rejects.toBeInstanceOf(ForbiddenError);
  });

  it("creates users with a password through the admin namespace with an API key", async () => {
    const admin = new Polydev({ baseUrl: t.url, apiKey: t.adminKey });
    const { user, apiKey } = await admin.admin.users.create({ name: "sdk-made", password: "sdk-password" });
    expect(user.name).toBe("sdk-made");
    expect(apiKey).toMatch(/^pdk_/);
    const browser = new Polydev({ baseUrl: t.url, fetch: browserLikeFetch().fetch });
    expect((await browser.auth.signIn({ name: "sdk-made", password: "sdk-password" })).user.id).toBe(user.id);
  });
});
