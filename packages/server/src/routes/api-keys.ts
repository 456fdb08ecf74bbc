/**
 * A user's own API keys: create (the secret is in that answer and nowhere else, ever), list
 * (never the secret or its hash), revoke. Revoking deletes the key; the audit log remembers it.
 */
import type { ApiKeyRecord } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { displayPrefix, generateApiKey, hashApiKey, newId } from "../services/api-keys.js";

const tags = ["api keys"];

/** Keys are rows on every request's path: a bound keeps one user from filling the table. */
export const MAX_KEYS_PER_USER = 50;
/** Ten years: a later expiry is a typo more often than a plan. */
const MAX_LIFETIME_MS = 10 * 365 * 86_400_000;

export const apiKeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string().describe("the key's first characters, to tell keys apart; not a secret"),
    createdAt: z.string(),
    expiresAt: z.string().nullable().describe("null: never expires"),
    lastUsedAt: z.string().nullable().describe("updated at most once a minute"),
  })
  .meta({ id: "ApiKey" });

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function presentApiKey(key: ApiKeyRecord): z.infer<typeof apiKeySchema> {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    createdAt: new Date(key.createdAt).toISOString(),
    expiresAt: iso(key.expiresAt),
    lastUsedAt: iso(key.lastUsedAt),
  };
}

export function apiKeyRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.get(
    "/v1/me/keys",
    {
      schema: {
        tags,
        summary: "Your API keys (never their secrets)",
        response: { 200: z.object({ items: z.array(apiKeySchema) }) },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const keys = await ctx.store.apiKeys.listForUser(principal.userId);
      return { items: keys.map(presentApiKey) };
    },
  );

  app.post(
    "/v1/me/keys",
    {
      schema: {
        tags,
        summary: "Create an API key; its secret is in this answer only",
        body: z.strictObject({
          name: z.string().trim().min(1, "name the key (e.g. 'laptop' or 'ci')").max(100),
          expiresAt: z.iso
            .datetime({
              offset: true,
              error: "expiresAt must be an ISO 8601 date-time, e.g. 2027-01-31T00:00:00Z",
            })
            .optional()
            .describe("when the key stops working; default: never"),
        }),
        response: {
          201: z.object({ key: apiKeySchema, apiKey: z.string().describe("the secret; shown once") }),
        },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      const now = ctx.clock.now();
      let expiresAt: number | null = null;
      if (request.body.expiresAt !== undefined) {
        expiresAt = Date.parse(request.body.expiresAt);
        if (expiresAt <= now) throw new PolydevError("invalid_request", "expiresAt must be in the future");
        if (expiresAt > now + MAX_LIFETIME_MS) {
          throw new PolydevError(
            "invalid_request",
            "expiresAt must be within 10 years; omit it for a key that never expires",
          );
        }
      }
      const existing = await ctx.store.apiKeys.listForUser(principal.userId);
      if (existing.length >= MAX_KEYS_PER_USER) {
        throw new PolydevError(
          "limit_exceeded",
          `you have ${existing.length} API keys, the most one user may have; revoke some first`,
          { details: { limit: "api_keys", max: MAX_KEYS_PER_USER } },
        );
      }
      const secret = generateApiKey();
      const key = await ctx.store.apiKeys.create({
        id: newId("key"),
        userId: principal.userId,
        name: request.body.name,
        keyHash: hashApiKey(secret),
        prefix: displayPrefix(secret),
        createdAt: now,
        expiresAt,
      });
      await ctx.audit.record({
        action: "api_key.create",
        actor: principal,
        target: { type: "api_key", id: key.id },
        ip: request.ip,
        details: { name: key.name, prefix: key.prefix, expiresAt: iso(key.expiresAt) },
      });
      reply.header("cache-control", "no-store");
      return reply.status(201).send({ key: presentApiKey(key), apiKey: secret });
    },
  );

  app.delete(
    "/v1/me/keys/:id",
    {
      schema: {
        tags,
        summary: "Revoke one of your API keys; requests with it answer 401 from now on",
        params: z.strictObject({ id: z.string().min(1).max(100) }),
        response: { 204: z.null().describe("revoked") },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      const key = (await ctx.store.apiKeys.listForUser(principal.userId)).find(
        (k) => k.id === request.params.id,
      );
      if (!key || !(await ctx.store.apiKeys.delete(principal.userId, key.id))) {
        throw new PolydevError("not_found", `API key ${request.params.id} does not exist`);
      }
      await ctx.audit.record({
        action: "api_key.revoke",
        actor: principal,
        target: { type: "api_key", id: key.id },
        ip: request.ip,
        details: { name: key.name, prefix: key.prefix },
      });
      return reply.status(204).send(null);
    },
  );
}
