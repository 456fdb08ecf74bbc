/**
 * The preview origin: a listener of its own, apart from the API and dashboard, serving sandbox
 * ports to browsers. A sandbox's pages are untrusted: on the dashboard's origin they could act
 * with the user's session, so they are only ever served here, and this listener never looks at
 * the dashboard's cookie or an API key (it strips them before anything reaches a sandbox; a
 * browser sends a host's cookies to every port of it).
 *
 * Entering: a signed link (`/__polydev/enter?token=…`, minutes long) is exchanged for a session
 * and a redirect to the page. Two modes:
 *
 * - Host mode (`POLYDEV_PREVIEW_DOMAIN`, the strong one): each sandbox port is its own origin,
 *   `<port>-<sandbox id>.<domain>`, with the app at `/`. The session is a cookie (HttpOnly,
 *   SameSite=Lax, host-only): browsers keep origins apart, so one preview's scripts cannot read
 *   another's pages, cookies or storage, and the app works as it would anywhere. Needs a wildcard
 *   DNS name (`*.localhost` resolves to loopback in browsers, for a single machine).
 * - Path mode (the default, zero setup): every preview shares this listener's origin, each under
 *   `/p/<session>/`. Cookie paths do not separate same-origin scripts, so every answer carries
 *   `Content-Security-Policy: sandbox` (without allow-same-origin): each page runs in an opaque
 *   origin, cannot read the origin's cookies or storage, and its requests anywhere are
 *   cross-site. Checked in Chromium: from such a page no SameSite cookie is sent, not even to
 *   the page's own path, so a cookie cannot carry the session here; the session is the signed,
 *   expiring token in the path instead. Another preview's page cannot learn it (it cannot read
 *   this page or its URL), so it cannot reach this preview at all. The app's own fetches are
 *   cross-origin from its opaque origin: answers to `Origin: null` get
 *   `Access-Control-Allow-Origin: null` (the path already is the credential; no cookie is
 *   involved). What path mode cannot give: the origin's storage, and a URL that is not a
 *   credential (treat a preview's address like the link). Host mode has neither limit.
 *
 * The session cookie and the path token never reach the sandbox.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { PolydevError } from "@polydev/core";
import type { Logger } from "pino";
import type { PreviewSession } from "./preview-links.js";
import type { RelayOptions } from "./preview-relay.js";
import { answerError, relayHttp, relayUpgrade, writeRawError } from "./preview-relay.js";
import type { PreviewService } from "./preview-service.js";
import { ENTER_PATH, labelToSandboxId, PREVIEW_COOKIE } from "./preview-service.js";

/** Path mode's answers: an opaque origin per page (see above). */
export const PATH_MODE_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";
const MAX_CONNECTIONS = 2048;

/** Which preview a request is for, from its host and path, before any cookie is looked at. */
type Addressed =
  | { mode: "enter"; rest: string }
  | { mode: "path"; token: string; rest: string; prefix: string }
  | { mode: "host"; sandboxId: string; port: number; rest: string };

export interface PreviewListener {
  url: string;
  close(): Promise<void>;
}

export async function servePreviews(
  listen: string,
  previews: PreviewService,
  log: Logger,
): Promise<PreviewListener> {
  const split = listen.lastIndexOf(":");
  const host = listen.slice(0, split).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(split + 1));
  const domain = previews.config.domain;

  const server = createServer({ maxHeaderSize: 16 * 1024, requireHostHeader: true }, (request, response) => {
    handleRequest(request, response).catch((error: unknown) => {
      log.warn({ err: error }, "a preview request failed");
      answerError(response, asPolydevError(error));
    });
  });
  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => undefined);
    previews.trackUpgrade(socket);
    handleUpgrade(request, socket, head).catch((error: unknown) => {
      writeRawError(socket, asPolydevError(error));
    });
  });
  server.on("clientError", (_error, socket) => {
    if (socket.writable)
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy();
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 20_000;
  // Answers stream for as long as the app sends (server-sent events, downloads).
  server.requestTimeout = 0;

  function address(request: IncomingMessage): Addressed {
    const url = request.url ?? "/";
    if (domain !== undefined) {
      const hostname = (request.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
      const match = hostname.endsWith(`.${domain}`)
        ? /^(\d{1,5})-([a-z]+-[0-9a-f]+)$/.exec(hostname.slice(0, -domain.length - 1))
        : null;
      const sandboxId = match?.[2] === undefined ? undefined : labelToSandboxId(match[2]);
      const previewPort = Number(match?.[1]);
      if (sandboxId === undefined || previewPort < 1 || previewPort > 65535) {
        throw new PolydevError(
          "not_found",
          `this is Polydev's preview origin: previews live at <port>-<sandbox>.${domain}; open a preview link`,
        );
      }
      return { mode: "host", sandboxId, port: previewPort, rest: url };
    }
    if (url.split("?")[0] === ENTER_PATH) return { mode: "enter", rest: url };
    const match = /^\/p\/([A-Za-z0-9_-]{1,400}\.[A-Za-z0-9_-]{1,1000}\.[A-Za-z0-9_-]{1,100})(\/.*)?$/.exec(
      url,
    );
    if (!match?.[1]) {
      throw new PolydevError(
        "not_found",
        "this is Polydev's preview origin: open a preview link (polydev port open)",
      );
    }
    return { mode: "path", token: match[1], rest: match[2] ?? "", prefix: `/p/${match[1]}` };
  }

  /** The session of the request: its path's token (path mode) or its cookie (host mode). */
  async function session(request: IncomingMessage, addressed: Addressed): Promise<PreviewSession> {
    if (addressed.mode === "path") return previews.links.verifySession(addressed.token);
    if (addressed.mode === "enter") throw new PolydevError("not_found", "open a preview link");
    const tokens = cookieValues(request.headers.cookie, PREVIEW_COOKIE);
    for (const token of tokens) {
      const found = await previews.links.verifySession(token).catch(() => undefined);
      if (found !== undefined && found.sandboxId === addressed.sandboxId && found.port === addressed.port) {
        return found;
      }
    }
    throw new PolydevError(
      "unauthorized",
      tokens.length === 0
        ? "no preview session: open this preview through a preview link (polydev port open, or Open preview in the dashboard)"
        : "this preview session has expired or is not for this preview: open a new preview link",
    );
  }

  function relayOptions(request: IncomingMessage, addressed: Addressed): RelayOptions {
    const prefix = addressed.mode === "path" ? addressed.prefix : "";
    const opaque = addressed.mode === "path" && request.headers.origin === "null";
    return {
      path: addressed.rest === "" ? "/" : addressed.rest,
      prefix,
      answerHeaders: {
        ...(addressed.mode === "path" ? { "content-security-policy": PATH_MODE_CSP } : {}),
        ...(opaque ? { "access-control-allow-origin": "null", vary: "origin" } : {}),
        "referrer-policy": "same-origin",
        "x-content-type-options": "nosniff",
      },
      answerTimeoutMs: previews.config.answerTimeoutMs,
      maxHeaderBytes: previews.config.maxHeaderBytes,
      forwarded: { host: request.headers.host, proto: "http" },
    };
  }

  async function handleRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const addressed = address(request);
    if (addressed.mode === "path" && addressed.rest === "") {
      // The page's relative links resolve under the prefix only with the trailing slash.
      response.writeHead(308, { location: `${addressed.prefix}/`, "content-length": 0 }).end();
      return;
    }
    if (
      addressed.mode === "enter" ||
      (addressed.mode === "host" && addressed.rest.split("?")[0] === ENTER_PATH)
    ) {
      return enter(request, response, addressed);
    }
    const found = await session(request, addressed);
    if (addressed.mode === "path" && isOpaquePreflight(request)) {
      answerPreflight(request, response);
      return;
    }
    const release = previews.acquire(found.sandboxId);
    response.once("close", release);
    const target = await previews
      .target(found.userId, found.sandboxId, found.port)
      .catch((error: unknown) => {
        release();
        throw error;
      });
    await relayHttp(request, response, target, relayOptions(request, addressed));
  }

  async function handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const addressed = address(request);
    const found = await session(request, addressed);
    const release = previews.acquire(found.sandboxId);
    socket.once("close", release);
    const target = await previews
      .target(found.userId, found.sandboxId, found.port)
      .catch((error: unknown) => {
        release();
        throw error;
      });
    await relayUpgrade(request, socket, head, target, relayOptions(request, addressed));
  }

  async function enter(
    request: IncomingMessage,
    response: ServerResponse,
    addressed: Addressed,
  ): Promise<void> {
    if (request.method !== "GET" && request.method !== "HEAD") {
      throw new PolydevError("method_not_allowed", "open a preview link with GET");
    }
    const token = new URL(addressed.rest, "http://preview").searchParams.get("token") ?? "";
    const link = await previews.links.verifyLink(token);
    const headers = { "cache-control": "no-store", "referrer-policy": "no-referrer", "content-length": 0 };
    const { token: sessionToken, expiresAt } = await previews.links.sessionFor(
      link,
      previews.config.sessionTtlMs,
    );
    if (addressed.mode === "host") {
      if (link.sandboxId !== addressed.sandboxId || link.port !== addressed.port) {
        throw new PolydevError("invalid_token", "this preview link is for another preview");
      }
      response.writeHead(303, {
        ...headers,
        "set-cookie": `${PREVIEW_COOKIE}=${sessionToken}; Path=/; Expires=${new Date(expiresAt).toUTCString()}; HttpOnly; SameSite=Lax`,
        location: "/",
      });
    } else {
      if (domain !== undefined) throw new PolydevError("not_found", "open the preview link on its own host");
      response.writeHead(303, { ...headers, location: `/p/${sessionToken}/` });
    }
    response.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const shownHost = bound.address.includes(":") ? `[${bound.address}]` : bound.address;
  const url = `http://${shownHost}:${bound.port}`;
  previews.useOrigin({ baseUrl: previews.config.publicUrl?.replace(/\/$/, "") ?? url, domain });
  log.info({ url, mode: domain === undefined ? "path" : "host" }, "preview listener ready");
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        previews.closeAll();
      }),
  };
}

/** A CORS preflight from a path-mode page (an opaque origin) to its own preview. */
function isOpaquePreflight(request: IncomingMessage): boolean {
  return (
    request.method === "OPTIONS" &&
    request.headers.origin === "null" &&
    request.headers["access-control-request-method"] !== undefined
  );
}

/**
 * Path mode's pages are opaque origins, so their fetches to their own server are preflighted;
 * the answer allows what was asked (the path is the credential, no cookie rides along).
 */
function answerPreflight(request: IncomingMessage, response: ServerResponse): void {
  const token = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
  const method = String(request.headers["access-control-request-method"] ?? "");
  const asked = String(request.headers["access-control-request-headers"] ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter((name) => token.test(name));
  response.writeHead(204, {
    "access-control-allow-origin": "null",
    "access-control-allow-methods": token.test(method) ? method : "GET",
    ...(asked.length > 0 ? { "access-control-allow-headers": asked.join(", ") } : {}),
    "access-control-max-age": "600",
    vary: "origin",
    "content-length": 0,
  });
  response.end();
}

function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  return header
    .split(";")
    .map((pair) => pair.trim())
    .filter((pair) => pair.startsWith(`${name}=`))
    .map((pair) => pair.slice(name.length + 1))
    .slice(0, 8);
}

function asPolydevError(error: unknown): PolydevError {
  return error instanceof PolydevError
    ? error
    : new PolydevError("internal", "the preview could not be served; see the server log");
}
