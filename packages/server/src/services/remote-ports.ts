/**
 * A preview port of a sandbox on another node. The preview origin can be reached on any replica
 * (one URL behind a load balancer), but only the sandbox's node holds its agent: this replica opens
 * a WebSocket to that node's internal port stream (routes/internal-ports.ts), signed with the
 * cluster secret like any forwarded request, and relays the preview over it as if the port were
 * here. The owner checks ownership, state and its per-sandbox connection limit before upgrading,
 * so a refusal comes back as its error (404, 409, 429, 502 nothing listening).
 */
import type { Duplex } from "node:stream";
import type { Clock, SandboxRecord, Store } from "@polydev/core";
import { ERROR_STATUS, type ErrorCode, PolydevError } from "@polydev/core";
import WebSocket, { createWebSocketStream } from "ws";
import type { Principal } from "../http/auth.js";
import { INTERNAL_HEADER, signInternalRequest } from "../http/internal-channel.js";
import type { RelayTarget } from "./preview-relay.js";

/** A refusal's answer is one small JSON error; more is not read. */
const MAX_REFUSAL_BYTES = 16 * 1024;

export interface RemotePortDeps {
  /** This node's name, and where live nodes are (undefined: that node stopped answering). */
  self: string;
  live(node: string): Promise<{ name: string; url: string } | undefined>;
  store: Pick<Store, "users">;
  clusterSecret: string;
  clock: Clock;
  /** How long the owner may take to accept the stream. */
  openTimeoutMs: number;
}

export function internalPortPath(sandboxId: string, port: number): string {
  return `/v1/internal/sandboxes/${encodeURIComponent(sandboxId)}/ports/${port}/stream`;
}

/** The relay target for a sandbox on another node; undefined when it is this node's own. */
export async function remotePortTarget(
  deps: RemotePortDeps,
  sandbox: SandboxRecord,
  userId: string,
  port: number,
): Promise<RelayTarget | undefined> {
  const owner = sandbox.node;
  if (owner === null || owner === deps.self) return undefined;
  const node = await deps.live(owner);
  if (!node) {
    throw new PolydevError(
      "node_unavailable",
      `sandbox ${sandbox.id} is on node ${owner}, which is not answering; it is marked failed once its registration expires`,
      { details: { node: owner } },
    );
  }
  const user = await deps.store.users.getById(userId);
  if (!user) throw new PolydevError("not_found", `sandbox ${sandbox.id} does not exist`);
  const principal: Principal = {
    userId: user.id,
    userName: user.name,
    role: user.role,
    keyId: undefined,
    session: undefined,
  };
  const path = internalPortPath(sandbox.id, port);
  return {
    port,
    connect: (signal) => openStream(deps, `${node.url}${path}`, path, principal, signal),
  };
}

function openStream(
  deps: RemotePortDeps,
  url: string,
  path: string,
  principal: Principal,
  signal: AbortSignal,
): Promise<Duplex> {
  const signature = signInternalRequest(deps.clusterSecret, {
    principal,
    method: "GET",
    url: path,
    from: deps.self,
    at: deps.clock.now(),
  });
  return new Promise<Duplex>((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws"), {
      headers: { [INTERNAL_HEADER]: signature },
      handshakeTimeout: deps.openTimeoutMs,
      perMessageDeflate: false,
      followRedirects: false,
    });
    const fail = (error: PolydevError): void => {
      ws.terminate();
      reject(error);
    };
    const onAbort = (): void => fail(new PolydevError("port_unreachable", "the preview request was closed"));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    ws.once("unexpected-response", (_request, response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_REFUSAL_BYTES) chunks.push(chunk);
        else response.destroy();
      });
      response.once("close", () => {
        signal.removeEventListener("abort", onAbort);
        fail(refusal(response.statusCode ?? 502, Buffer.concat(chunks).toString("utf8")));
      });
    });
    ws.once("error", (error) => {
      signal.removeEventListener("abort", onAbort);
      reject(
        new PolydevError("node_unavailable", `the sandbox's node could not be reached: ${error.message}`, {
          cause: error,
        }),
      );
    });
    ws.once("open", () => {
      signal.removeEventListener("abort", onAbort);
      const stream = createWebSocketStream(ws);
      // The relay owns the stream from here and handles its errors; none may go unheard.
      stream.on("error", () => undefined);
      resolve(stream);
    });
  });
}

/** The owner's error as this replica's own: its code when it is one we know, else by status. */
function refusal(status: number, body: string): PolydevError {
  let code: string | undefined;
  let message = `the sandbox's node refused the preview (${status})`;
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === "string") code = parsed.error.code;
    if (typeof parsed.error?.message === "string") message = parsed.error.message;
  } catch {
    // Not our JSON (a proxy in between answered): the status says enough.
  }
  if (code !== undefined && Object.hasOwn(ERROR_STATUS, code))
    return new PolydevError(code as ErrorCode, message);
  return new PolydevError(status === 404 ? "not_found" : "node_unavailable", message);
}
