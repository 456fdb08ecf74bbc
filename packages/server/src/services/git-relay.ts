/**
 * Lets git in a sandbox reach a private repository without the token entering the sandbox.
 *
 * For the length of one git command the host serves a loopback port inside the sandbox (an
 * agent `forward.out`, like the provider gateway): git there talks plain smart-HTTP to
 * `http://127.0.0.1:<port>/<repo path>`, and the host relays each request to the real remote,
 * adding `Authorization` itself. The token lives only in this process's memory; the sandbox sees
 * the remote's answers, never the header. The relay answers only for the one repository it was
 * opened for (its host and path prefix) and only git's smart-HTTP endpoints, follows no redirect,
 * streams both ways with back-pressure, and closes when the command ends.
 */
import { randomInt } from "node:crypto";
import { lookup } from "node:dns";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AgentConnection, ForwardedPort } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { refusedAddressReason } from "@polydev/images";
import type { Logger } from "pino";
import { Agent, request } from "undici";

/** Connections one relay accepts at once; git makes one or two. */
const MAX_RELAY_CONNECTIONS = 8;
/** Sandbox loopback ports tried for a relay (a process there may hold one). */
const RELAY_PORTS = { min: 41_000, max: 48_999, attempts: 5 };
const UPSTREAM_TIMEOUT_MS = 60_000;
/** Request headers git sends that the remote needs; nothing else (no cookie, no authorization) passes. */
const REQUEST_HEADERS = ["content-type", "accept", "content-encoding", "git-protocol", "content-length"];
/** Response headers passed back; a remote's cookies and auth challenges stay here. */
const RESPONSE_HEADERS = ["content-type", "cache-control", "content-encoding", "expires", "pragma"];

/**
 * Whether a relayed request may not reach `address`: the image pulls' and webhooks' rules
 * (loopback, link-local, metadata, private, reserved, or one of this host's own addresses), so
 * the three ways the host connects somewhere for a user never disagree.
 */
export function isPrivateAddress(address: string): boolean {
  return refusedAddressReason(address) !== undefined;
}

/** A git remote the host may talk to for a user: parsed, checked against the operator's rules. */
export interface RemoteTarget {
  /** `https://host[:port]` */
  origin: string;
  /** `host[:port]`, lowercase: what a git credential is stored under. */
  host: string;
  /** The repository's path without a trailing slash (`/org/app.git`). */
  path: string;
  insecure: boolean;
}

/**
 * Parses a remote URL for the host side (relay, forge API). Plain http and private addresses
 * only for hosts the operator listed (POLYDEV_GIT_INSECURE_HOSTS): a user's stored credential must
 * not make the server reach its own network.
 */
export function remoteTarget(url: string, insecureHosts: readonly string[]): RemoteTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PolydevError("invalid_request", `${url} is not a URL`);
  }
  const host = parsed.host.toLowerCase();
  const insecure = insecureHosts.includes(host);
  if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && insecure))
    throw new PolydevError(
      "invalid_request",
      `the server reaches ${host} only over https (an operator may allow plain http with POLYDEV_GIT_INSECURE_HOSTS)`,
    );
  if (parsed.username || parsed.password)
    throw new PolydevError("invalid_request", "the remote URL must not hold a user name or password");
  const path = parsed.pathname.replace(/\/+$/, "");
  if (!path || path.split("/").includes(".."))
    throw new PolydevError("invalid_request", `the remote URL ${url} names no repository path`);
  return { origin: `${parsed.protocol}//${host}`, host, path, insecure };
}

/** An undici dispatcher whose connections refuse private addresses (unless the target is insecure-listed). */
export function publicOnlyAgent(insecure: boolean): Agent {
  if (insecure) return new Agent({ connect: { timeout: 15_000 } });
  return new Agent({
    connect: {
      timeout: 15_000,
      lookup: (hostname, options, callback) => {
        lookup(hostname, { ...options, all: true }, (error, addresses) => {
          if (error) return callback(error, "", 4);
          const list = addresses as { address: string; family: number }[];
          const refused = list.find((a) => isPrivateAddress(a.address));
          if (refused || list.length === 0)
            return callback(
              Object.assign(new Error(`${hostname} resolves to a private address`), { code: "EPRIVATE" }),
              "",
              4,
            );
          if ((options as { all?: boolean }).all) return callback(null, list as never, 4);
          const first = list[0] as { address: string; family: number };
          return callback(null, first.address, first.family);
        });
      },
    },
  });
}

/** Which request to the relay is one of git's smart-HTTP calls for the repository. */
function allowedPath(method: string, url: string, prefix: string): boolean {
  const [path = "", query = ""] = url.split("?", 2);
  if (!path.startsWith(`${prefix}/`)) return false;
  const rest = path.slice(prefix.length);
  if (method === "GET" && rest === "/info/refs")
    return query === "service=git-upload-pack" || query === "service=git-receive-pack";
  return method === "POST" && (rest === "/git-upload-pack" || rest === "/git-receive-pack") && query === "";
}

export interface RelayAuth {
  username: string;
  token: string;
}

/**
 * Runs `command` with a relay open in the sandbox; `command` gets the URL git there uses in
 * place of the remote. The relay closes when `command` settles, whatever it did.
 */
export async function withGitRelay<T>(
  connection: AgentConnection,
  target: RemoteTarget,
  auth: RelayAuth,
  log: Logger,
  command: (relayUrl: string) => Promise<T>,
): Promise<T> {
  const dispatcher = publicOnlyAgent(target.insecure);
  const authorization = `Basic ${Buffer.from(`${auth.username}:${auth.token}`).toString("base64")}`;
  const server = createServer((req, res) => {
    relay(req, res).catch((error: unknown) => {
      log.warn({ err: error instanceof Error ? error.message : String(error) }, "git relay request failed");
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`polydev could not reach ${target.host}\n`);
      } else res.destroy();
    });
  });
  server.on("clientError", (_error, socket) => socket.destroy());
  const relay = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? "GET";
    const url = req.url ?? "/";
    if (!allowedPath(method, url, target.path)) {
      req.resume();
      res.writeHead(403, { "content-type": "text/plain" });
      res.end(`polydev relays only git's calls for ${target.host}${target.path}\n`);
      return;
    }
    const headers: Record<string, string> = { authorization, "user-agent": "git/polydev-relay" };
    for (const name of REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === "string") headers[name] = value;
    }
    const upstream = await request(`${target.origin}${url}`, {
      method: method as "GET" | "POST",
      headers,
      body: method === "POST" ? req : null,
      dispatcher,
      maxRedirections: 0,
      headersTimeout: UPSTREAM_TIMEOUT_MS,
      bodyTimeout: UPSTREAM_TIMEOUT_MS,
    });
    const out: Record<string, string> = {};
    for (const name of RESPONSE_HEADERS) {
      const value = upstream.headers[name];
      if (typeof value === "string") out[name] = value;
    }
    // A redirect or an auth challenge ends here: git must not be sent elsewhere, nor asked for a password.
    const status = upstream.statusCode >= 300 && upstream.statusCode < 400 ? 502 : upstream.statusCode;
    res.writeHead(status === 401 ? 403 : status, out);
    await pipeline(upstream.body, res);
  };
  let open = 0;
  const accept = (socket: Duplex): void => {
    socket.on("error", () => undefined);
    if (open >= MAX_RELAY_CONNECTIONS) {
      socket.destroy();
      return;
    }
    open++;
    socket.once("close", () => open--);
    server.emit("connection", socket);
  };
  let forwarded: ForwardedPort | undefined;
  let port = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < RELAY_PORTS.attempts && !forwarded; attempt++) {
    port = randomInt(RELAY_PORTS.min, RELAY_PORTS.max + 1);
    try {
      forwarded = await connection.forwardOut(port, accept);
    } catch (error) {
      lastError = error;
    }
  }
  if (!forwarded)
    throw new PolydevError(
      "sandbox_failed",
      `could not open the git relay in the sandbox: ${lastError instanceof Error ? lastError.message : String(lastError)}`,
    );
  try {
    return await command(`http://127.0.0.1:${port}${target.path}`);
  } finally {
    forwarded.close();
    server.close();
    server.closeAllConnections();
    void dispatcher.close().catch(() => undefined);
  }
}
