/**
 * Bearer API keys on every /v1 route. The principal is attached to the request; routes never
 * parse headers themselves.
 */

import type { Store, UserRole } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { hashApiKey } from "../services/api-keys.js";

export interface Principal {
  userId: string;
  userName: string;
  role: UserRole;
  keyId: string;
}

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** last_used_at is informational; writing it once a minute keeps the hot path read-only. */
const TOUCH_EVERY_MS = 60_000;

export function registerAuth(app: FastifyInstance, store: Store): void {
  const lastTouched = new Map<string, number>();
  app.decorateRequest("principal", undefined);
  app.addHook("onRequest", async (request) => {
    if (!request.url.startsWith("/v1/")) return;
    request.principal = await authenticate(request, store, lastTouched);
  });
}

async function authenticate(
  request: FastifyRequest,
  store: Store,
  lastTouched: Map<string, number>,
): Promise<Principal> {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)$/i.exec(header);
  const token = match?.[1];
  if (!token) {
    throw new PolydevError(
      "unauthorized",
      "missing API key: send the header 'Authorization: Bearer <api key>'",
    );
  }
  const found = await store.apiKeys.findByHash(hashApiKey(token));
  if (!found) throw new PolydevError("unauthorized", "the API key is not valid (revoked or mistyped)");
  const now = Date.now();
  if ((lastTouched.get(found.key.id) ?? 0) + TOUCH_EVERY_MS < now) {
    lastTouched.set(found.key.id, now);
    await store.apiKeys.touch(found.key.id, now);
  }
  return { userId: found.user.id, userName: found.user.name, role: found.user.role, keyId: found.key.id };
}

export function requirePrincipal(request: FastifyRequest): Principal {
  if (!request.principal) throw new PolydevError("unauthorized", "missing API key");
  return request.principal;
}

export function requireAdmin(request: FastifyRequest): Principal {
  const principal = requirePrincipal(request);
  if (principal.role !== "admin") throw new PolydevError("forbidden", "this route needs an admin API key");
  return principal;
}
