/**
 * External OIDC/JWT issuers against a real server and a real issuer: the test serves a discovery
 * document and a JWKS on loopback (keys made with jose) and signs tokens with them. Covers
 * provisioning and linking, role mapping, dashboard sign-in, key rotation, bounded refetching,
 * and the tokens an attacker would try (expired, wrong audience or issuer, alg=none, HS256 with
 * the public key, random key ids).
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { startTestServer } from "./testing/harness.js";

const AUDIENCE = "polydev-test";
const COOLDOWN_MS = 500;

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

interface Issuer {
  url: string;
  server: Server;
  /** Keys the JWKS serves, by kid. */
  served: Map<string, JWK>;
  jwksHits: number;
  discoveryHits: number;
}

async function startIssuer(): Promise<Issuer> {
  const issuer: Issuer = {
    url: "",
    server: createServer(),
    served: new Map(),
    jwksHits: 0,
    discoveryHits: 0,
  };
  issuer.server.on("request", (request, response) => {
    const send = (body: unknown) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    };
    if (request.url === "/.well-known/openid-configuration") {
      issuer.discoveryHits += 1;
      send({ issuer: issuer.url, jwks_uri: `${issuer.url}/jwks` });
    } else if (request.url === "/jwks") {
      issuer.jwksHits += 1;
      send({ keys: [...issuer.served.values()] });
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => issuer.server.listen(0, "127.0.0.1", resolve));
  issuer.url = `http://127.0.0.1:${(issuer.server.address() as AddressInfo).port}`;
  return issuer;
}

async function addKey(issuer: Issuer, kid: string, alg = "RS256"): Promise<KeyPair> {
  const pair = await generateKeyPair(alg, { extractable: true });
  issuer.served.set(kid, { ...(await exportJWK(pair.publicKey)), kid, alg, use: "sig" });
  return pair;
}

interface TokenOptions {
  kid?: string;
  key?: KeyPair;
  iss?: string;
  aud?: string;
  sub?: string;
  expiresIn?: string | number;
  claims?: Record<string, unknown>;
}

let issuer: Issuer;
let key1: KeyPair;
let t: TestServer;

async function token(options: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({ preferred_username: "Ada Lovelace", ...options.claims })
    .setProtectedHeader({ alg: "RS256", kid: options.kid ?? "k1" })
    .setIssuer(options.iss ?? issuer.url)
    .setAudience(options.aud ?? AUDIENCE)
    .setSubject(options.sub ?? "subject-ada")
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "5m");
  return jwt.sign((options.key ?? key1).privateKey);
}

async function me(bearer: string) {
  return t.api.withKey(bearer).call<{
    id: string;
    name: string;
    role: string;
    error?: { code: string; message: string };
  }>("GET", "/v1/me");
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

beforeAll(async () => {
  issuer = await startIssuer();
  key1 = await addKey(issuer, "k1");
  t = await startTestServer({
    oidcIssuers: [
      {
        issuer: issuer.url,
        audience: AUDIENCE,
        roleClaim: "app_metadata.roles",
        adminValue: "polydev-admin",
      },
    ],
    oidcKeyRefetchCooldownMs: COOLDOWN_MS,
  });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await new Promise((resolve) => issuer?.server.close(resolve));
});

describe("OIDC bearer tokens", () => {
  it("provisions a user on first sign-in (via discovery) and links later tokens to the same user", async () => {
    const first = await me(await token());
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ name: "ada-lovelace", role: "user" });
    expect(issuer.discoveryHits).toBe(1);
    const again = await me(await token());
    expect(again.body.id).toBe(first.body.id);
    // The same display name from another account is another person, never a link.
    const other = await me(await token({ sub: "subject-impostor" }));
    expect(other.status).toBe(200);
    expect(other.body.id).not.toBe(first.body.id);
    expect(other.body.name).toMatch(/^ada-lovelace-[0-9a-f]{6}$/);
    const audit = await t.api.call<{ items: { actorId: string; details: Record<string, unknown> }[] }>(
      "GET",
      "/v1/admin/audit?action=oidc.provision",
    );
    expect(audit.body.items.map((e) => e.actorId).sort()).toEqual([first.body.id, other.body.id].sort());
    expect(audit.body.items[0]?.details).toMatchObject({ issuer: issuer.url });
  });

  it("maps the role claim at every sign-in, and audits the change", async () => {
    const sub = "subject-grace";
    const asAdmin = await me(await token({ sub, claims: { app_metadata: { roles: ["polydev-admin"] } } }));
    expect(asAdmin.body.role).toBe("admin");
    const adminOnly = await t.api
      .withKey(await token({ sub, claims: { app_metadata: { roles: ["polydev-admin"] } } }))
      .call("GET", "/v1/admin/users");
    expect(adminOnly.status).toBe(200);
    const demoted = await me(await token({ sub, claims: { app_metadata: { roles: ["viewer"] } } }));
    expect(demoted.body).toMatchObject({ id: asAdmin.body.id, role: "user" });
    const refused = await t.api.withKey(await token({ sub })).call("GET", "/v1/admin/users");
    expect(refused.status).toBe(403);
    const audit = await t.api.call<{ items: { targetId: string; details: Record<string, unknown> }[] }>(
      "GET",
      `/v1/admin/audit?action=user.role_change&targetId=${asAdmin.body.id}`,
    );
    expect(audit.body.items[0]?.details).toMatchObject({ from: "admin", to: "user", via: "oidc" });
  });

  it("refuses bad tokens with 401 invalid_token, says why, and never echoes the token", async () => {
    const cases: [string, string, RegExp][] = [
      ["expired", await token({ expiresIn: Math.floor(Date.now() / 1000) - 120 }), /expired/],
      ["wrong audience", await token({ aud: "someone-else" }), /audience/],
      [
        "unknown issuer",
        await token({ iss: "https://evil.example" }),
        /issuer .* is not one this server trusts/,
      ],
      ["unknown kid", await token({ kid: "k-unknown" }), /no key of the issuer matches/],
      ["tampered", `${(await token()).slice(0, -4)}AAAA`, /signature does not verify/],
    ];
    for (const [what, bad, reason] of cases) {
      const answer = await me(bad);
      expect(answer.status, what).toBe(401);
      expect(answer.body.error?.code, what).toBe("invalid_token");
      expect(answer.body.error?.message, what).toMatch(reason);
      expect(JSON.stringify(answer.body), what).not.toContain(bad.split(".")[2]);
    }
  });

  it("refuses alg=none and HS256 signed with the issuer's public key", async () => {
    const claims = {
      iss: issuer.url,
      aud: AUDIENCE,
      sub: "subject-ada",
      exp: Math.floor(Date.now() / 1000) + 300,
    };
    const unsecured = `${b64({ alg: "none", kid: "k1" })}.${b64(claims)}.`;
    const none = await me(unsecured);
    expect(none.status).toBe(401);
    expect(none.body.error?.code).toBe("invalid_token");
    // The classic confusion: the RSA public key (PEM, or the JWK's n) used as an HMAC secret.
    const pem = await exportSPKI(key1.publicKey);
    for (const secret of [
      new TextEncoder().encode(pem),
      new TextEncoder().encode(String(issuer.served.get("k1")?.n)),
    ]) {
      const forged = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: "k1" }).sign(secret);
      const answer = await me(forged);
      expect(answer.status).toBe(401);
      expect(answer.body.error?.code).toBe("invalid_token");
      expect(answer.body.error?.message).toMatch(/algorithm is not accepted/);
    }
  });

  it("follows key rotation: a new kid is fetched once the cooldown has passed", async () => {
    const key2 = await addKey(issuer, "k2");
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 100));
    const rotated = await me(await token({ kid: "k2", key: key2 }));
    expect(rotated.status).toBe(200);
    // The old key leaves the JWKS: once refetched, its tokens are refused.
    issuer.served.delete("k1");
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 100));
    await me(await token({ kid: "k-unknown-forces-refetch", key: key2 }));
    const old = await me(await token({ kid: "k1" }));
    expect(old.status).toBe(401);
    issuer.served.set("k1", { ...(await exportJWK(key1.publicKey)), kid: "k1", alg: "RS256", use: "sig" });
  });

  it("does not let tokens with random kids make the server hammer the issuer", async () => {
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 100));
    const before = issuer.jwksHits;
    const answers = await Promise.all(
      Array.from({ length: 40 }, async () => me(await token({ kid: randomBytes(8).toString("hex") }))),
    );
    expect(answers.every((a) => a.status === 401)).toBe(true);
    // One refetch for the whole burst: the cooldown holds every later unknown kid.
    expect(issuer.jwksHits - before).toBeLessThanOrEqual(1);
  });
});

describe("what a token cannot make the server fetch", () => {
  it("never fetches from a URL the token names (its iss, jku or x5u), only the configured issuer's keys", async () => {
    let evilHits = 0;
    const evil = createServer((_, response) => {
      evilHits += 1;
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ keys: [] }));
    });
    await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
    const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    try {
      const attacker = await generateKeyPair("RS256", { extractable: true });
      const headers = { alg: "RS256", kid: "evil", jku: `${evilUrl}/jwks`, x5u: `${evilUrl}/cert` };
      const claims = { sub: "subject-ada", aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 };
      for (const iss of [evilUrl, issuer.url]) {
        const forged = await new SignJWT({ ...claims, iss })
          .setProtectedHeader(headers)
          .sign(attacker.privateKey);
        const answer = await me(forged);
        expect(answer.status).toBe(401);
        expect(answer.body.error?.code).toBe("invalid_token");
      }
      expect(evilHits).toBe(0);
    } finally {
      await new Promise((resolve) => evil.close(resolve));
    }
  });
});

describe("dashboard sign-in with an issuer's token", () => {
  it("exchanges a valid token for a session cookie and audits both outcomes", async () => {
    const response = await fetch(`${t.url}/v1/auth/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        idToken: await token({ sub: "subject-dash", claims: { preferred_username: "dash" } }),
      }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("set-cookie")).toMatch(/polydev_session=/);
    const session = (await response.json()) as { user: { name: string } };
    expect(session.user.name).toBe("dash");

    const expired = await token({ expiresIn: Math.floor(Date.now() / 1000) - 120 });
    const refused = await fetch(`${t.url}/v1/auth/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ idToken: expired }),
    });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("invalid_token");
    const audit = await t.api.call<{ items: { outcome: string; details: Record<string, unknown> }[] }>(
      "GET",
      "/v1/admin/audit?action=sign_in&limit=2",
    );
    expect(audit.body.items.map((e) => [e.outcome, e.details.method])).toEqual([
      ["failure", "oidc"],
      ["success", "oidc"],
    ]);
    expect(JSON.stringify(audit.body)).not.toContain(expired.split(".")[2]);
  });
});

describe("an issuer that cannot be reached", () => {
  it("refuses a JWKS larger than the size cap with 502, whatever Content-Length says", async () => {
    const huge = createServer((_, response) => {
      // Chunked: no Content-Length to refuse early, so the cap must hold while reading.
      response.writeHead(200, { "content-type": "application/json" });
      response.write('{"keys":[');
      for (let i = 0; i < 64; i += 1)
        response.write(`${i ? "," : ""}{"kty":"oct","k":"${"A".repeat(8192)}"}`);
      response.end("]}");
    });
    await new Promise<void>((resolve) => huge.listen(0, "127.0.0.1", resolve));
    const hugeUrl = `http://127.0.0.1:${(huge.address() as AddressInfo).port}`;
    const server = await startTestServer({
      oidcIssuers: [{ issuer: hugeUrl, audience: AUDIENCE, jwksUrl: `${hugeUrl}/jwks` }],
    });
    try {
      const answer = await server.api
        .withKey(await token({ iss: hugeUrl }))
        .call<{ error: { code: string; message: string } }>("GET", "/v1/me");
      expect(answer.status).toBe(502);
      expect(answer.body.error.code).toBe("upstream_unreachable");
      expect(answer.body.error.message).toMatch(/larger than 262144 bytes/);
    } finally {
      await server.close();
      await new Promise((resolve) => huge.close(resolve));
    }
  }, 60_000);

  it("answers 502 upstream_unreachable, not 500, and retries no faster than the cooldown", async () => {
    const dead = createServer((_, response) => response.writeHead(500).end());
    await new Promise<void>((resolve) => dead.listen(0, "127.0.0.1", resolve));
    const deadUrl = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`;
    let hits = 0;
    dead.on("request", () => {
      hits += 1;
    });
    const server = await startTestServer({
      oidcIssuers: [{ issuer: deadUrl, audience: AUDIENCE }],
      oidcKeyRefetchCooldownMs: 60_000,
    });
    try {
      for (let i = 0; i < 5; i += 1) {
        const answer = await server.api
          .withKey(await token({ iss: deadUrl }))
          .call<{ error: { code: string } }>("GET", "/v1/me");
        expect(answer.status).toBe(502);
        expect(answer.body.error.code).toBe("upstream_unreachable");
      }
      expect(hits).toBe(1);
    } finally {
      await server.close();
      await new Promise((resolve) => dead.close(resolve));
    }
  }, 60_000);
});
