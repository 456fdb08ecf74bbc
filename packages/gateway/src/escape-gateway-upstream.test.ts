/**
 * Escape probes against the provider gateway: a sandbox controls the request target, and must not
 * be able to make the gateway send the owner's real key (or any request) anywhere but the
 * configured upstream, under its configured base path, on a provider API path.
 *
 * An "attacker" server on 127.0.0.1 stands in for a host of the sandbox's choosing and for the
 * Polydev server itself (reachable on loopback even from a `network: "none"` sandbox). It must
 * never receive a request.
 */
import type { Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "./gateway.js";
import { createGateway } from "./gateway.js";
import type { GatewayProvider } from "./providers.js";
import type { RawResponse } from "./testing/raw-http.js";
import { rawRequest, startRecorder } from "./testing/raw-http.js";

type Recorder = Awaited<ReturnType<typeof startRecorder>>;

const PLACEHOLDER = "pdg_sandbox_a";
const REAL_KEYS: Record<GatewayProvider, string> = {
  anthropic: "sk-ant-REAL-KEY-anthropic",
  openai: "sk-REAL-KEY-openai",
  gemini: "REAL-KEY-gemini",
};

let attacker: Recorder;
let upstream: Recorder;
const refused: { sandboxId?: string; provider?: string; path: string; reason: string }[] = [];
const credentialLookups: string[] = [];

/**
 * Two configurations: bare origins (the defaults, `https://api.anthropic.com`, where a `//host`
 * became a protocol-relative URL) and base URLs with a path (where `..` could climb out of it).
 */
const configurations = [
  { name: "upstreams configured as bare origins", basePath: (_provider: string) => "" },
  { name: "upstreams configured with a base path", basePath: (provider: string) => `/base/${provider}` },
];
const gateways: { gateway: Gateway; server: Server; port: number }[] = [];

beforeAll(async () => {
  attacker = await startRecorder();
  // The legitimate upstream answers a redirect to the attacker on one path, to prove the gateway
  // never follows one with the key.
  upstream = await startRecorder((hit, res) => {
    if (hit.url.includes("/v1/models/redirect-me")) {
      res.writeHead(302, { location: `${attacker.url}/stolen` });
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true }));
  });
  for (const configuration of configurations) {
    const gateway = createGateway({
      upstreams: {
        anthropic: `${upstream.url}${configuration.basePath("anthropic")}`,
        // A trailing slash on the configured base must not matter.
        openai: `${upstream.url}${configuration.basePath("openai")}/`,
        gemini: `${upstream.url}${configuration.basePath("gemini")}`,
      },
      resolvePlaceholder: async (placeholder) =>
        placeholder === PLACEHOLDER ? { userId: "usr_a", sandboxId: "sbx_a" } : undefined,
      credentialFor: async (_userId, provider) => {
        credentialLookups.push(provider);
        return { kind: "api_key", secret: REAL_KEYS[provider] };
      },
      recordUsage: () => undefined,
      onRefused: (info) => refused.push(info),
    });
    const server = createServer((req, res) => gateway.handle(req, res, { sandboxId: "sbx_a" }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    gateways.push({ gateway, server, port: (server.address() as AddressInfo).port });
  }
});

afterAll(async () => {
  for (const { gateway, server } of gateways) {
    await gateway.close();
    server.closeAllConnections();
    server.close();
  }
  await attacker.close();
  await upstream.close();
});

afterEach(() => {
  // Whatever a probe did, nothing may reach the attacker.
  const hits = attacker.hits.splice(0);
  expect(hits.map((hit) => ({ url: hit.url, headers: hit.headers }))).toEqual([]);
});

/** A request as a sandbox client would send it, every key header carrying the placeholder. */
function probe(port: number, method: string, target: string, extraHeaders = ""): Promise<RawResponse> {
  const body = method === "GET" || method === "HEAD" ? "" : "{}";
  const head = [
    `${method} ${target} HTTP/1.1`,
    `host: 127.0.0.1:${port}`,
    `x-api-key: ${PLACEHOLDER}`,
    `authorization: Bearer ${PLACEHOLDER}`,
    `x-goog-api-key: ${PLACEHOLDER}`,
    "content-type: application/json",
    `content-length: ${body.length}`,
    ...(extraHeaders ? [extraHeaders] : []),
  ].join("\r\n");
  return rawRequest(port, head, body);
}

function attackerHost(): string {
  return `127.0.0.1:${attacker.port}`;
}

/**
 * Request targets a sandbox could use to leave the configured upstream. `nodeRefuses`: Node's own
 * HTTP parser answers 400 before the gateway sees the request (still a pass: nothing forwarded).
 */
const bypasses: { name: string; method: string; target: () => string; nodeRefuses?: boolean }[] = [
  {
    name: "protocol-relative //host:port",
    method: "GET",
    target: () => `/anthropic//${attackerHost()}/healthz`,
  },
  {
    name: "protocol-relative with an API path",
    method: "POST",
    target: () => `/anthropic//${attackerHost()}/v1/messages`,
  },
  { name: "backslash /\\host", method: "GET", target: () => `/openai/\\${attackerHost()}/v1/models` },
  { name: "double backslash", method: "GET", target: () => `/openai/\\\\${attackerHost()}/v1/models` },
  { name: "slash then backslash", method: "GET", target: () => `/gemini//\\${attackerHost()}/v1beta/models` },
  { name: "encoded //", method: "GET", target: () => `/anthropic/%2f%2f${attackerHost()}/healthz` },
  {
    name: "encoded // upper case",
    method: "GET",
    target: () => `/anthropic/%2F%2F${attackerHost()}/healthz`,
  },
  { name: "encoded backslashes", method: "GET", target: () => `/openai/%5c%5C${attackerHost()}/v1/models` },
  { name: "dot-dot climbing out of the base path", method: "GET", target: () => "/anthropic/../../healthz" },
  { name: "dot-dot after an API prefix", method: "GET", target: () => "/anthropic/v1/../../../healthz" },
  { name: "encoded dot-dot", method: "GET", target: () => "/anthropic/v1/%2e%2e/%2E%2E/healthz" },
  { name: "half-encoded dot-dot", method: "GET", target: () => "/openai/v1/.%2e/.%2e/healthz" },
  { name: "dot-dot with encoded slashes", method: "GET", target: () => "/openai/v1/..%2f..%2f..%2fhealthz" },
  { name: "single dot segment", method: "POST", target: () => "/anthropic/./v1/messages" },
  { name: "userinfo @host", method: "GET", target: () => `/anthropic/@${attackerHost()}/healthz` },
  { name: "userinfo //user@host", method: "GET", target: () => `/anthropic//user@${attackerHost()}/x` },
  {
    name: "absolute URL in the request line",
    method: "GET",
    target: () => `http://${attackerHost()}/healthz`,
  },
  {
    name: "absolute URL wrapping a provider path",
    method: "GET",
    target: () => `http://${attackerHost()}/anthropic//${attackerHost()}/healthz`,
  },
  {
    name: "leading // before the provider",
    method: "GET",
    target: () => `//${attackerHost()}/anthropic/v1/models`,
  },
  { name: "encoded NUL", method: "GET", target: () => "/anthropic/v1/models%00/x" },
  { name: "encoded tab and newline", method: "GET", target: () => `/anthropic/%09%0a//${attackerHost()}/x` },
  {
    name: "raw tab in the path",
    method: "GET",
    target: () => `/anthropic/\t//${attackerHost()}/x`,
    nodeRefuses: true,
  },
  { name: "overlong path", method: "GET", target: () => `/anthropic/v1/models/${"a".repeat(8000)}` },
  {
    name: "URL smuggled in the query",
    method: "POST",
    target: () => `/gemini/v1beta/models/m:generateContent?alt=sse&next=http://${attackerHost()}/`,
  },
  {
    name: "scheme-relative URL in the query",
    method: "GET",
    target: () => `/openai/v1/models?u=//${attackerHost()}`,
  },
  { name: "fragment", method: "POST", target: () => `/anthropic/v1/messages#@${attackerHost()}` },
  { name: "unknown provider", method: "GET", target: () => `/${attackerHost()}/healthz` },
  { name: "asterisk form", method: "OPTIONS", target: () => "*" },
  { name: "path not in the API allow-list", method: "GET", target: () => "/anthropic/healthz" },
  { name: "method not in the API allow-list", method: "DELETE", target: () => "/openai/v1/responses" },
];

describe.each(configurations.map((configuration, index) => ({ ...configuration, index })))(
  "gateway escape probes, $name",
  ({ index, basePath }) => {
    const port = (): number => gateways[index]?.port ?? 0;
    for (const bypass of bypasses) {
      it(`refuses ${bypass.name} with a 4xx and forwards nothing`, async () => {
        const upstreamBefore = upstream.hits.length;
        const refusedBefore = refused.length;
        const lookupsBefore = credentialLookups.length;
        const response = await probe(port(), bypass.method, bypass.target());
        expect(
          attacker.hits.map(
            (hit) =>
              `${hit.method} ${hit.url} key=${hit.headers["x-api-key"] ?? hit.headers.authorization ?? hit.headers["x-goog-api-key"]}`,
          ),
        ).toEqual([]);
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect(response.status).toBeLessThan(500);
        expect(upstream.hits.length).toBe(upstreamBefore);
        expect(credentialLookups.length).toBe(lookupsBefore);
        expect(response.body).not.toContain("REAL-KEY");
        if (bypass.nodeRefuses) {
          expect(response.status).toBe(400);
          return;
        }
        const error = (JSON.parse(response.body) as { error: { code: string; message: string } }).error;
        expect(error.code).toBe("gateway_path_refused");
        expect(error.message.length).toBeGreaterThan(0);
        expect(refused.length).toBe(refusedBefore + 1);
        expect(refused.at(-1)?.sandboxId).toBe("sbx_a");
        expect(refused.at(-1)?.reason.length).toBeGreaterThan(0);
        expect(JSON.stringify(refused.at(-1))).not.toContain(PLACEHOLDER);
      });
    }

    it("ignores the Host header: a request for an allowed path still goes to the configured upstream", async () => {
      const response = await probe(
        port(),
        "GET",
        "/anthropic/v1/models",
        `x-forwarded-host: ${attackerHost()}\r\nforwarded: host=${attackerHost()}`,
      );
      expect(response.status).toBe(200);
      expect(upstream.hits.at(-1)?.url).toBe(`${basePath("anthropic")}/v1/models`);
      expect(upstream.hits.at(-1)?.headers.host).toBe(`127.0.0.1:${upstream.port}`);
    });

    it("passes an upstream redirect back as it is and never follows it with the key", async () => {
      const response = await probe(port(), "GET", "/openai/v1/models/redirect-me");
      expect(response.status).toBe(302);
      expect(response.headers.location).toBe(`${attacker.url}/stolen`);
      expect(upstream.hits.at(-1)?.url).toBe(`${basePath("openai")}/v1/models/redirect-me`);
    });

    it("forwards allowed paths under the base path with the real key, and drops a ?key= placeholder", async () => {
      const response = await probe(
        port(),
        "POST",
        `/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=${PLACEHOLDER}`,
      );
      expect(response.status).toBe(200);
      const hit = upstream.hits.at(-1);
      expect(hit?.url).toBe(
        `${basePath("gemini")}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`,
      );
      expect(hit?.headers["x-goog-api-key"]).toBe(REAL_KEYS.gemini);
      expect(JSON.stringify(hit)).not.toContain(PLACEHOLDER);
    });
  },
);
