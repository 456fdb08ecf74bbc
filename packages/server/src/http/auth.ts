/**
 * Every /v1 route accepts a bearer API key or the dashboard's session cookie. The principal is
 * attached to the request; routes never parse headers themselves. A cookie rides along on any
 * request the browser makes, so cookie-authenticated requests must also prove they come from our
 * own pages: unsafe methods carry the session's CSRF token, WebSocket upgrades a same-host Origin.
 */

import type { Bus, Clock, Store, UserRole } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { hashApiKey } from "../services/api-keys.js";
import type { BrowserSessions } from "../services/browser-sessions.js";
import { csrfTokenMatches, SESSION_COOKIE } from "../services/browser-sessions.js";
import type { OidcUsers } from "../services/oidc-users.js";
import { looksLikeJwt, type OidcVerifier } from "../services/oidc-verifier.js";
import {
  INTERNAL_HEADER,
  INTERNAL_SIGNATURE_MAX_AGE_MS,
  refuseInternalRequest,
  verifyInternalRequest,
} from "./internal-channel.js";

/** External issuers' tokens, when configured. */
export interface OidcAuth {
  verifier: OidcVerifier;
  users: OidcUsers;
}

export interface Principal {
  userId: string;
  userName: string;
  role: UserRole;
  /** Set when a bearer API key authenticated the request. */
  keyId: string | undefined;
  /** Set when the session cookie authenticated the request. */
  session: { id: string; csrfToken: string } | undefined;
  /** Set when an external issuer's JWT authenticated the request. */
  issuer?: string | undefined;
}

/**
 * Signing in needs no credentials yet, and the API's description is public like any published
 * API reference (it holds no one's data); everything else under /v1 needs them.
 */
const PUBLIC_ROUTES = new Set(["POST /v1/auth/session", "GET /v1/openapi.json"]);
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | undefined;
    /** The replica that forwarded this request (see http/forwarding.ts); undefined from clients. */
    forwardedBy: string | undefined;
  }
}

/** last_used_at is informational; writing it once a minute keeps the hot path read-only. */
const TOUCH_EVERY_MS = 60_000;

/** Needs @fastify/cookie registered first (it parses `request.cookies`). */
export function registerAuth(
  app: FastifyInstance,
  services: {
    store: Store;
    sessions: BrowserSessions;
    clock: Clock;
    config: { clusterSecret?: string | undefined };
    /** Where a forwarded request's nonce is claimed, once across replicas. */
    bus: Pick<Bus, "acquire">;
  },
  oidc: OidcAuth,
): void {
  const lastTouched = new Map<string, number>();
  app.decorateRequest("principal", undefined);
  app.decorateRequest("forwardedBy", undefined);
  app.addHook("onRequest", async (request) => {
    // Before anything else, on every route: a client must never pass for another replica.
    const internal = request.headers[INTERNAL_HEADER];
    if (internal !== undefined) {
      const verified = verifyInternalRequest(
        services.config.clusterSecret,
        Array.isArray(internal) ? internal.join(",") : internal,
        { method: request.method, url: request.url },
        services.clock.now(),
      );
      // Held past the header's own age limit: by then the header is refused as expired anyway.
      const once = await services.bus.acquire(`internal-once:${verified.nonce}`, {
        ttlMs: 2 * INTERNAL_SIGNATURE_MAX_AGE_MS + 1000,
      });
      if (once === undefined) throw refuseInternalRequest("already used");
      request.principal = verified.principal;
      request.forwardedBy = verified.from;
      return;
    }
    // /metrics is for admins (Prometheus scrapes it with an admin key).
    if (!request.url.startsWith("/v1/") && request.url.split("?")[0] !== "/metrics") return;
    if (PUBLIC_ROUTES.has(`${request.method} ${request.url.split("?")[0]}`)) return;
    const { store, sessions, clock } = services;
    const cookie = request.cookies[SESSION_COOKIE];
    if (request.headers.authorization === undefined && cookie !== undefined) {
      request.principal = await authenticateSession(request, sessions, cookie);
      return;
    }
    request.principal = await authenticate(request, store, clock, oidc, lastTouched);
  });
}

async function authenticateSession(
  request: FastifyRequest,
  sessions: BrowserSessions,
  token: string,
): Promise<Principal> {
  const resolved = await sessions.resolve(token);
  if (!resolved) {
    throw new PolydevError("unauthorized", "the session has ended or expired; sign in again");
  }
  if (request.headers.upgrade?.toLowerCase() === "websocket") {
    if (!sameHostOrigin(request)) {
      throw new PolydevError(
        "csrf_failed",
        "a WebSocket opened with the session cookie must come from a page of this server (Origin must match Host)",
      );
    }
  } else if (!SAFE_METHODS.has(request.method)) {
    const header = request.headers["x-csrf-token"];
    if (!csrfTokenMatches(resolved.csrfToken, typeof header === "string" ? header : undefined)) {
      throw new PolydevError(
        "csrf_failed",
        "missing or wrong x-csrf-token header: send the csrfToken from sign-in (GET /v1/auth/session returns it)",
      );
    }
  }
  return {
    userId: resolved.user.id,
    userName: resolved.user.name,
    role: resolved.user.role,
    keyId: undefined,
    session: { id: resolved.session.id, csrfToken: resolved.csrfToken },
  };
}

/** True when the Origin header names the host the request was sent to. */
export function sameHostOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  const host = request.headers.host;
  if (!origin || !host) return false;
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

async function authenticate(
  request: FastifyRequest,
  store: Store,
  clock: Clock,
  oidc: OidcAuth,
  lastTouched: Map<string, number>,
): Promise<Principal> {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)$/i.exec(header);
  const token = match?.[1];
  if (!token) {
    throw new PolydevError(
      "unauthorized",
      "not signed in: send the header 'Authorization: Bearer <api key>' or sign in with POST /v1/auth/session",
    );
  }
  if (oidc.verifier.enabled && looksLikeJwt(token)) {
    const verified = await oidc.verifier.verify(token);
    const user = await oidc.users.userFor(verified, request.ip);
    return {
      userId: user.id,
      userName: user.name,
      role: user.role,
      keyId: undefined,
      session: undefined,
      issuer: verified.issuer.issuer,
    };
  }
  const found = await store.apiKeys.findByHash(hashApiKey(token));
  const now = clock.now();
  checkApiKeyUsable(found?.key, now);
  if (!found) throw new PolydevError("unauthorized", "the API key is not valid (revoked or mistyped)");
  if ((lastTouched.get(found.key.id) ?? 0) + TOUCH_EVERY_MS < now) {
    lastTouched.set(found.key.id, now);
    await store.apiKeys.touch(found.key.id, now);
  }
  return {
    userId: found.user.id,
    userName: found.user.name,
    role: found.user.role,
    keyId: found.key.id,
    session: undefined,
  };
}

/** Unknown (revoked or mistyped) and expired keys are refused alike, with the reason. */
export function checkApiKeyUsable(key: { expiresAt: number | null } | undefined, now: number): void {
  if (!key) throw new PolydevError("unauthorized", "the API key is not valid (revoked or mistyped)");
  if (key.expiresAt !== null && key.expiresAt <= now) {
    throw new PolydevError(
      "unauthorized",
      `the API key expired at ${new Date(key.expiresAt).toISOString()}; create a new one`,
    );
  }
}

export function requirePrincipal(request: FastifyRequest): Principal {
  if (!request.principal) throw new PolydevError("unauthorized", "missing API key");
  return request.principal;
}

export function requireAdmin(request: FastifyRequest): Principal {
  const principal = requirePrincipal(request);
  if (principal.role !== "admin") throw new PolydevError("forbidden", "this route needs an admin");
  return principal;
}
