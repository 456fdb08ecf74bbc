import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { parseBody, readBody, SseWriter, sendJson } from "./http-io.js";
import type { IdSource } from "./ids.js";
import { createIdSource } from "./ids.js";
import type { Route } from "./routes.js";
import { matchRoute, notFoundBody, respondHead, upgradeRequired } from "./routes.js";
import { ScriptPlayer } from "./script-player.js";
import type { FakeProviders, FakeProvidersOptions, RecordedRequest } from "./types.js";

/**
 * Starts fake Anthropic, OpenAI and Gemini APIs on one loopback port.
 *
 * @example
 * const fake = await startFakeProviders({ script: [{ toolCall: { command: "touch a.txt" } }] });
 * // ANTHROPIC_BASE_URL=fake.url, GOOGLE_GEMINI_BASE_URL=fake.url, Codex base_url=`${fake.url}/v1`
 * await fake.close();
 */
export async function startFakeProviders(options: FakeProvidersOptions = {}): Promise<FakeProviders> {
  const player = new ScriptPlayer(options.script);
  const ids = createIdSource();
  const requests: RecordedRequest[] = [];

  const record = (req: IncomingMessage, provider: RecordedRequest["provider"], url: URL, body: unknown) => {
    const recorded: RecordedRequest = {
      provider,
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: flattenHeaders(req),
      body,
      receivedAt: new Date(),
      clientDisconnected: false,
    };
    requests.push(recorded);
    options.onRequest?.(recorded);
    return recorded;
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // A throwing script function or a broken socket must not take the fake down with it.
      if (!res.headersSent) sendJson(res, 500, { error: { message: `fake-providers: ${String(error)}` } });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake-providers.invalid");
    const method = req.method ?? "GET";
    const raw = await readBody(req);
    const route = matchRoute(method, url.pathname, req.headers);
    const recorded = record(req, route?.provider ?? "unknown", url, parseBody(raw));
    res.on("close", () => {
      if (!res.writableFinished) recorded.clientDisconnected = true;
    });
    if (!route) return sendJson(res, 404, notFoundBody(method, url.pathname));
    if (method === "HEAD") return respondHead(res, route.kind === "json" ? route.status : 200);
    if (route.kind === "json") return sendJson(res, route.status, route.body(raw.length));
    await answerModelTurn(route, recorded, raw.length, res, player, ids);
  }

  // Codex asks for a WebSocket first; the real API's refusal makes it fall back to SSE.
  server.on("upgrade", (req: IncomingMessage, socket: Socket) => {
    const url = new URL(req.url ?? "/", "http://fake-providers.invalid");
    record(req, url.pathname === "/v1/responses" ? "openai" : "unknown", url, undefined);
    const payload = JSON.stringify(upgradeRequired());
    socket.end(
      `HTTP/1.1 426 Upgrade Required\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n\r\n${payload}`,
    );
  });

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(":") ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}`,
    port,
    requests,
    setScript: (script) => player.setScript(script),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Keep-alive sockets and streams still being paced would otherwise hold close() open.
        server.closeAllConnections();
      }),
  };
}

async function answerModelTurn(
  route: Extract<Route, { kind: "model" }>,
  recorded: RecordedRequest,
  requestBytes: number,
  res: ServerResponse,
  player: ScriptPlayer,
  ids: IdSource,
): Promise<void> {
  const { api } = route;
  const facts = api.read(recorded.body, route.facts);
  const plan = await player.planFor({ ...facts, provider: api.provider, request: recorded }, requestBytes);
  const context = { model: facts.model, ids, body: recorded.body };
  const headers = api.headers?.(context) ?? {};
  if (plan.kind === "error") return sendJson(res, plan.status, api.errorBody(plan), headers);
  if (!facts.stream) return sendJson(res, 200, api.complete(plan, context), headers);
  const sse = new SseWriter(res, headers);
  await api.stream(sse, plan, context);
  sse.end();
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}
