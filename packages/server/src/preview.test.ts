/**
 * Preview URLs against a real server and real sandboxes with no network: listing ports, the API
 * form (bearer key, CSP sandbox, streaming, WebSocket, errors) and the preview origin's signed
 * links and cookies, with the escape probes: the dashboard's cookie and keys never honoured or
 * passed on, another sandbox's ports and the host's loopback out of reach, traversal and
 * smuggling attempts kept inside the addressed port, a destroyed sandbox ending its requests.
 */
import type { ClientRequest } from "node:http";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";
import { startPreviewApp } from "./testing/preview-app.js";
import { rawExchange } from "./testing/raw-http.js";

let t: TestServer;
let api: ApiClient;
let other: ApiClient;
let a: string;
let b: string;
let previewUrl: string;

beforeAll(async () => {
  t = await startTestServer({ preview: { answerTimeoutMs: 1500, maxConnectionsPerSandbox: 4 } });
  previewUrl = t.server.previewUrl ?? "";
  api = await createUser(t.api, "preview-user");
  other = await createUser(t.api, "preview-other");
  [a, b] = await Promise.all([
    api.createSandbox({ network: "none" }),
    api.createSandbox({ network: "none" }),
  ]);
  await Promise.all([startPreviewApp(api, a, 8080), startPreviewApp(api, b, 8081)]);
}, 120_000);
afterAll(async () => {
  await t?.close();
});

const bearer = () => ({ authorization: `Bearer ${api.key}` });
const portUrl = (id: string, port: number, path: string) =>
  `${t.url}/v1/sandboxes/${id}/ports/${port}${path}`;

async function signInCookie(): Promise<string> {
  const answer = await fetch(`${t.url}/v1/auth/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ apiKey: api.key }),
  });
  const cookie = answer.headers.getSetCookie().find((c) => c.startsWith("polydev_session="));
  if (!cookie) throw new Error(`no session cookie: ${answer.status}`);
  return cookie.split(";")[0] ?? "";
}

async function link(id: string, port: number, body: Record<string, unknown> = {}) {
  return api.call<{ url: string; expiresAt: string; share: boolean; error?: { code: string } }>(
    "POST",
    `/v1/sandboxes/${id}/ports/${port}/preview-link`,
    body,
  );
}

/** Opens a link as a browser would: where it sends you, and the cookie it sets (host mode). */
async function enter(url: string, headers: Record<string, string> = {}) {
  const answer = await fetch(url, { redirect: "manual", headers });
  expect(answer.status).toBe(303);
  const setCookie = answer.headers.get("set-cookie") ?? "";
  const location = answer.headers.get("location") ?? "";
  return { cookie: setCookie.split(";")[0] ?? "", page: new URL(location, url).toString(), setCookie };
}

describe("listing ports", () => {
  it("lists the ports listening in the sandbox with their process", async () => {
    const listed = await api.call<{
      items: { port: number; address: string; process: { name: string } | null }[];
    }>("GET", `/v1/sandboxes/${a}/ports`);
    expect(listed.status).toBe(200);
    const app = listed.body.items.find((p) => p.port === 8080);
    expect(app).toMatchObject({ port: 8080, address: "127.0.0.1", process: { name: "python3" } });
    // Sandbox b's app is not in sandbox a's list.
    expect(listed.body.items.some((p) => p.port === 8081)).toBe(false);
  });

  it("answers 404 for another user's sandbox", async () => {
    expect((await other.call("GET", `/v1/sandboxes/${a}/ports`)).status).toBe(404);
    expect((await other.call("GET", `/v1/sandboxes/${a}/ports/8080/hello`)).status).toBe(404);
    expect((await other.call("POST", `/v1/sandboxes/${a}/ports/8080/preview-link`, {})).status).toBe(404);
  });
});

describe("the API form", () => {
  it("relays a request with its path and query, and answers with CSP sandbox", async () => {
    const answer = await fetch(portUrl(a, 8080, "/hello/x?y=1"), { headers: bearer() });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toBe("hello from port 8080 path /hello/x?y=1");
    expect(answer.headers.get("content-security-policy")).toBe("sandbox");
    const root = await fetch(portUrl(a, 8080, ""), { headers: bearer() });
    expect(await root.text()).toContain("preview page on port 8080");
  });

  it("streams large bodies both ways intact", async () => {
    const body = Buffer.alloc(12 * 1024 * 1024, 7);
    const echoed = await fetch(portUrl(a, 8080, "/echo"), { method: "POST", headers: bearer(), body });
    expect(echoed.status).toBe(200);
    const back = Buffer.from(await echoed.arrayBuffer());
    expect(back.length).toBe(body.length);
    expect(back.equals(body)).toBe(true);
    const streamed = await fetch(portUrl(a, 8080, "/stream?n=20000000"), { headers: bearer() });
    expect((await streamed.arrayBuffer()).byteLength).toBe(20_000_000);
  });

  it("never passes the key, Polydev's cookies or the CSRF header to the sandbox", async () => {
    const answer = await fetch(portUrl(a, 8080, "/headers"), {
      headers: {
        ...bearer(),
        cookie: "polydev_session=abc; app=kept; polydev_preview=x",
        "x-csrf-token": "t",
        "x-custom": "kept",
      },
    });
    const seen = (await answer.json()) as Record<string, string>;
    expect(seen.authorization).toBeUndefined();
    expect(seen["x-csrf-token"]).toBeUndefined();
    expect(seen.cookie).toBe("app=kept");
    expect(seen["x-custom"]).toBe("kept");
    expect(seen.host).toBe("localhost:8080");
  });

  it("never honours the dashboard's cookie", async () => {
    const cookie = await signInCookie();
    const answer = await fetch(portUrl(a, 8080, "/hello"), { headers: { cookie } });
    expect(answer.status).toBe(401);
    expect(((await answer.json()) as { error: { message: string } }).error.message).toMatch(/Bearer/);
    const ws = await openWebSocket(`${t.url.replace("http", "ws")}/v1/sandboxes/${a}/ports/8080/ws`, {
      cookie,
      origin: t.url,
    });
    expect(ws).toMatchObject({ status: 401 });
  });

  it("answers 502 port_unreachable when nothing listens, 400 for a bad port", async () => {
    const answer = await api.call<{ error: { code: string; message: string } }>(
      "GET",
      `/v1/sandboxes/${a}/ports/9999/`,
    );
    expect(answer.status).toBe(502);
    expect(answer.body.error.code).toBe("port_unreachable");
    expect(answer.body.error.message).toMatch(/nothing listens on port 9999/);
    expect((await api.call("GET", `/v1/sandboxes/${a}/ports/70000/`)).status).toBe(400);
    expect((await api.call("GET", `/v1/sandboxes/${a}/ports/0/`)).status).toBe(400);
  });

  it("gets through when the app closes a kept-alive connection between requests", async () => {
    for (let round = 0; round < 3; round++) {
      const closing = await fetch(portUrl(a, 8080, "/close-after"), { headers: bearer() });
      expect(await closing.text()).toBe("closing");
      const got = await fetch(portUrl(a, 8080, `/hello/${round}`), { headers: bearer() });
      expect(await got.text()).toBe(`hello from port 8080 path /hello/${round}`);
      await fetch(portUrl(a, 8080, "/close-after"), { headers: bearer() }).then((r) => r.text());
      const posted = await fetch(portUrl(a, 8080, "/echo"), {
        method: "POST",
        headers: bearer(),
        body: "after",
      });
      expect(posted.status).toBe(200);
      expect(await posted.text()).toBe("after");
    }
  });

  it("refuses an answer head larger than the cap with a 502", async () => {
    const answer = await api.call<{ error: { code: string; message: string } }>(
      "GET",
      `/v1/sandboxes/${a}/ports/8080/big-header`,
    );
    expect(answer.status).toBe(502);
    expect(answer.body.error.message).toMatch(/too large an answer head/);
  });

  it("answers 504 when the sandbox sends no answer in time", async () => {
    const answer = await api.call<{ error: { code: string } }>("GET", `/v1/sandboxes/${a}/ports/8080/slow`);
    expect(answer.status).toBe(504);
    expect(answer.body.error.code).toBe("timeout");
  });

  it("relays a WebSocket", async () => {
    const ws = new WebSocket(`${t.url.replace("http", "ws")}/v1/sandboxes/${a}/ports/8080/ws`, {
      headers: bearer(),
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const reply = new Promise<string>((resolve) => ws.once("message", (data) => resolve(String(data))));
    ws.send("ping over the agent channel");
    expect(await reply).toBe("echo:ping over the agent channel");
    ws.close();
  });

  it("keeps cookies the sandbox sets under its own path, and never lets it set Polydev's", async () => {
    const answer = await fetch(portUrl(a, 8080, "/cookie"), { headers: bearer() });
    const cookies = answer.headers.getSetCookie();
    expect(cookies).toEqual([`app=1; HttpOnly; Path=/v1/sandboxes/${a}/ports/8080/`]);
    const redirect = await fetch(portUrl(a, 8080, "/redirect"), { headers: bearer(), redirect: "manual" });
    expect(redirect.headers.get("location")).toBe(`/v1/sandboxes/${a}/ports/8080/hello/after`);
  });
});

describe("escape probes", () => {
  it("one sandbox's port form cannot reach another sandbox's port", async () => {
    // b's app listens on 8081 in b; a has nothing there.
    const fromA = await api.call<{ error: { code: string } }>("GET", `/v1/sandboxes/${a}/ports/8081/hello`);
    expect(fromA.status).toBe(502);
    expect(fromA.body.error.code).toBe("port_unreachable");
    const fromB = await fetch(portUrl(b, 8081, "/hello"), { headers: bearer() });
    expect(await fromB.text()).toBe("hello from port 8081 path /hello");
  });

  it("a sandbox's preview cannot reach a port on the host's loopback", async () => {
    let reached = 0;
    const host = createServer((_request, response) => {
      reached++;
      response.end("host secret");
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    const hostPort = (host.address() as AddressInfo).port;
    try {
      const answer = await api.call<{ error: { code: string } }>(
        "GET",
        `/v1/sandboxes/${a}/ports/${hostPort}/`,
      );
      expect(answer.status).toBe(502);
      expect(answer.body.error.code).toBe("port_unreachable");
      const { url } = (await link(a, hostPort)).body;
      const { page } = await enter(url);
      const viaPreview = await fetch(page);
      expect(viaPreview.status).toBe(502);
      expect(reached).toBe(0);
    } finally {
      host.close();
    }
  });

  it("path traversal stays inside the addressed sandbox port", async () => {
    const exchange = await rawExchange(
      t.server.url,
      [
        `GET /v1/sandboxes/${a}/ports/8080/../../../${b}/ports/8081/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.key}\r\nConnection: close\r\n\r\n`,
      ],
      { expect: 1 },
    );
    const answer = exchange.responses[0];
    expect(answer?.status).toBe(404);
    // a's app answered (it has no such page), not b's.
    expect(answer?.body).toBe(`no such page /../../../${b}/ports/8081/hello`);
    // Percent-encoded dots are not dot segments to the router either (a fetch would fold them).
    const encoded = await rawExchange(
      t.server.url,
      [
        `GET /v1/sandboxes/${a}/ports/8080/%2e%2e/%2e%2e/%2e%2e/${b}/ports/8081/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.key}\r\nConnection: close\r\n\r\n`,
      ],
      { expect: 1 },
    );
    expect(encoded.responses[0]?.body).toBe(`no such page /%2e%2e/%2e%2e/%2e%2e/${b}/ports/8081/hello`);
  });

  it("refuses smuggling and header injection before anything reaches a sandbox", async () => {
    const both = await rawExchange(
      t.server.url,
      [
        `POST /v1/sandboxes/${a}/ports/8080/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.key}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n`,
      ],
      { expect: 2, waitMs: 3000 },
    );
    expect(both.responses[0]?.status).toBe(400);
    expect(both.responses.length).toBe(1);
    const folded = await rawExchange(
      t.server.url,
      [
        `GET /v1/sandboxes/${a}/ports/8080/headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.key}\r\nX-A: one\r\n two\r\n\r\n`,
      ],
      { expect: 1 },
    );
    expect(folded.responses[0]?.status).toBe(400);
    // A chunked body ends where its last chunk says: what follows is the client's next request to
    // Polydev (here without a key), never bytes sent on to the sandbox.
    const pipelined = await rawExchange(
      t.server.url,
      [
        `POST /v1/sandboxes/${a}/ports/8080/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.key}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /hello/smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      ],
      { expect: 2 },
    );
    expect(pipelined.responses.map((r) => r.status)).toEqual([200, 404]);
    expect(pipelined.responses[0]?.body).toBe("abc");
  });
});

describe("preview links and the preview origin", () => {
  it("listens on its own port, apart from the API", () => {
    expect(previewUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(new URL(previewUrl).port).not.toBe(new URL(t.url).port);
  });

  it("opens a preview with a signed link, under a path only that link's session knows", async () => {
    const made = await link(a, 8080);
    expect(made.status).toBe(201);
    expect(made.body.url.startsWith(`${previewUrl}/__polydev/enter?token=`)).toBe(true);
    expect(Date.parse(made.body.expiresAt)).toBeGreaterThan(Date.now());
    const { page, setCookie } = await enter(made.body.url);
    // Path mode: the session is the signed token in the path (a sandboxed page sends no cookies).
    expect(setCookie).toBe("");
    const prefix = new URL(page).pathname;
    expect(prefix).toMatch(/^\/p\/[\w-]+\.[\w-]+\.[\w-]+\/$/);
    const answer = await fetch(new URL("hello", page));
    expect(answer.status).toBe(200);
    expect(await answer.text()).toBe("hello from port 8080 path /hello");
    expect(answer.headers.get("content-security-policy")).toMatch(/^sandbox allow-scripts/);
    expect(answer.headers.get("content-security-policy")).not.toContain("allow-same-origin");
    // An altered session token is refused; another link's session reaches only its own sandbox.
    const token = prefix.split("/")[2] ?? "";
    const altered = `${previewUrl}/p/${token.slice(0, -3)}${token.endsWith("AAA") ? "BBB" : "AAA"}/hello`;
    const refused = await fetch(altered);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("invalid_token");
    const second = await enter((await link(b, 8081)).body.url);
    expect(await (await fetch(new URL("hello", second.page))).text()).toBe(
      "hello from port 8081 path /hello",
    );
    // The page's own fetches come from an opaque origin: preflights and answers allow "null".
    const preflight = await fetch(new URL("echo", page), {
      method: "OPTIONS",
      headers: {
        origin: "null",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("null");
    const fromPage = await fetch(new URL("hello", page), { headers: { origin: "null" } });
    expect(fromPage.headers.get("access-control-allow-origin")).toBe("null");
    expect((await fetch(new URL("hello", page))).headers.get("access-control-allow-origin")).toBeNull();
  });

  it("never honours or passes on the dashboard's cookie or a key on the preview origin", async () => {
    const session = await signInCookie();
    const { page } = await enter((await link(a, 8080)).body.url);
    const seen = (await (
      await fetch(new URL("headers", page), {
        headers: { cookie: `${session}; polydev_preview=x; app=kept`, authorization: `Bearer ${api.key}` },
      })
    ).json()) as Record<string, string>;
    expect(seen.cookie).toBe("app=kept");
    expect(seen.authorization).toBeUndefined();
    // The dashboard's session or a key alone open nothing here.
    const somePreview = `${previewUrl}/p/${"a".repeat(20)}.${"b".repeat(20)}.${"c".repeat(20)}/hello`;
    expect((await fetch(somePreview, { headers: { cookie: session } })).status).toBe(401);
    expect((await fetch(somePreview, { headers: bearer() })).status).toBe(401);
    expect(
      (await fetch(`${previewUrl}/__polydev/enter`, { headers: { cookie: session, ...bearer() } })).status,
    ).toBe(401);
    // And the preview origin serves nothing of the API.
    expect(
      (await fetch(`${previewUrl}/v1/sandboxes`, { headers: { cookie: session, ...bearer() } })).status,
    ).toBe(404);
  });

  it("refuses altered or misused links with a clear 4xx", async () => {
    const { url } = (await link(a, 8080)).body;
    const at = url.indexOf("token=") + 30;
    const altered = `${url.slice(0, at)}${url[at] === "A" ? "B" : "A"}${url.slice(at + 1)}`;
    const bad = await fetch(altered, { redirect: "manual" });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("invalid_token");
    // A session token is not a link, nor a link a session.
    const { page } = await enter(url);
    const sessionToken = new URL(page).pathname.split("/")[2] ?? "";
    expect(
      (await fetch(`${previewUrl}/__polydev/enter?token=${sessionToken}`, { redirect: "manual" })).status,
    ).toBe(401);
    const linkToken = new URL(url).searchParams.get("token") ?? "";
    expect((await fetch(`${previewUrl}/p/${linkToken}/hello`)).status).toBe(401);
    const tooLong = await link(a, 8080, { expiresIn: 3600 });
    expect(tooLong.status).toBe(400);
    const share = await link(a, 8080, { expiresIn: 3600, share: true });
    expect(share.status).toBe(201);
    expect(share.body.share).toBe(true);
    expect((await link(a, 8080, { bogus: 1 })).status).toBe(400);
    expect((await fetch(`${previewUrl}/`)).status).toBe(404);
  });

  it("relays a WebSocket on the preview origin", async () => {
    const { page } = await enter((await link(a, 8080)).body.url);
    const wsUrl = new URL("ws", page).toString().replace("http", "ws");
    const ws = new WebSocket(wsUrl);
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const reply = new Promise<string>((resolve) => ws.once("message", (data) => resolve(String(data))));
    ws.send("hi");
    expect(await reply).toBe("echo:hi");
    ws.close();
    const forged = wsUrl.replace(/\/p\/[^/]+\//, `/p/${"a".repeat(20)}.${"b".repeat(20)}.${"c".repeat(20)}/`);
    expect(await openWebSocket(forged, {})).toMatchObject({ status: 401 });
  });

  it("caps a sandbox's open preview connections, and frees them when they end", async () => {
    // Plain sockets, each held open mid-answer (the app sends a first chunk and then nothing).
    const hanging = await Promise.all(
      [1, 2, 3, 4].map(
        () =>
          new Promise<ClientRequest>((resolve, reject) => {
            const request = httpRequest(portUrl(a, 8080, "/hang-body"), { headers: bearer(), agent: false });
            request.on("response", (response) => response.once("data", () => resolve(request)));
            request.on("error", reject);
            request.end();
          }),
      ),
    );
    const refused = await api.call<{ error: { code: string } }>("GET", `/v1/sandboxes/${a}/ports/8080/hello`);
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("limit_exceeded");
    for (const request of hanging) request.destroy();
    // Released as each connection closes; the next request gets through once they have.
    let status = 0;
    for (let attempt = 0; attempt < 100 && status !== 200; attempt++) {
      status = (await api.call("GET", `/v1/sandboxes/${a}/ports/8080/hello`)).status;
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(status).toBe(200);
  });
});

describe("faults", () => {
  it("a sandbox destroyed mid-request ends that request, and the server serves on", async () => {
    const doomed = await api.createSandbox({ network: "none" });
    await startPreviewApp(api, doomed, 8090);
    const answer = await fetch(portUrl(doomed, 8090, "/hang-body"), { headers: bearer() });
    const reader = answer.body?.getReader();
    expect(new TextDecoder().decode((await reader?.read())?.value)).toBe("started");
    const ended = (async () => {
      try {
        for (;;) {
          const { done } = (await reader?.read()) ?? { done: true };
          if (done) return "ended";
        }
      } catch {
        return "cut";
      }
    })();
    expect((await api.call("DELETE", `/v1/sandboxes/${doomed}`)).status).toBeLessThan(300);
    expect(await ended).toBe("cut");
    const still = await fetch(portUrl(a, 8080, "/hello"), { headers: bearer() });
    expect(still.status).toBe(200);
  });
});

describe("closing", () => {
  it("a server closing with preview WebSockets open ends them instead of waiting on them", async () => {
    const own = await startTestServer();
    const user = await createUser(own.api, "preview-closing");
    const id = await user.createSandbox({ network: "none" });
    await startPreviewApp(user, id, 8080);
    const made = await user.call<{ url: string }>("POST", `/v1/sandboxes/${id}/ports/8080/preview-link`, {});
    const { page } = await enter(made.body.url);
    const sockets = [
      new WebSocket(`${own.url.replace("http", "ws")}/v1/sandboxes/${id}/ports/8080/ws`, {
        headers: { authorization: `Bearer ${user.key}` },
      }),
      new WebSocket(new URL("ws", page).toString().replace("http", "ws")),
    ];
    await Promise.all(
      sockets.map((ws) => new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject))),
    );
    const closed = sockets.map((ws) => new Promise<void>((resolve) => ws.once("close", () => resolve())));
    await own.close();
    await Promise.all(closed);
  });
});

/** Opens a WebSocket and reports the refusal's status, or "open". */
function openWebSocket(url: string, headers: Record<string, string>): Promise<{ status: number | "open" }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => {
      ws.close();
      resolve({ status: "open" });
    });
    ws.once("unexpected-response", (_request, response) => {
      resolve({ status: response.statusCode ?? 0 });
      response.resume();
    });
    ws.once("error", () => resolve({ status: 0 }));
  });
}
