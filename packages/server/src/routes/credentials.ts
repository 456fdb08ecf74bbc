import { GATEWAY_PROVIDERS } from "@polydev/gateway";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { sandboxIdParams } from "../http/schemas.js";
import { presentCredential } from "../services/credential-service.js";

const tags = ["credentials"];
const providerParams = z.object({
  provider: z.enum(GATEWAY_PROVIDERS, { error: `provider must be one of ${GATEWAY_PROVIDERS.join(", ")}` }),
});
const credentialSchema = z
  .object({
    provider: z.string(),
    kind: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
    lastUsedAt: z.string().nullable(),
    lastValidatedAt: z.string().nullable(),
    valid: z.boolean().nullable(),
  })
  .meta({ id: "Credential" });

export function credentialRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.put(
    "/v1/credentials/:provider",
    {
      schema: {
        tags,
        summary: "Store an API key (encrypted; never shown again)",
        params: providerParams,
        body: z.strictObject({
          apiKey: z
            .string()
            .min(8, "apiKey is too short to be a provider key")
            .max(4096, "apiKey is longer than any provider key (4096 characters)")
            .regex(/^\S+$/, "apiKey must not contain spaces or line breaks"),
        }),
        response: { 200: credentialSchema },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const stored = await ctx.credentials.putApiKey(
        principal.userId,
        request.params.provider,
        request.body.apiKey,
      );
      await ctx.audit.record({
        action: "credential.add",
        actor: principal,
        target: { type: "credential", id: stored.id },
        ip: request.ip,
        details: { provider: request.params.provider, kind: "api_key" },
      });
      return presentCredential(stored);
    },
  );

  app.get(
    "/v1/credentials",
    {
      schema: {
        tags,
        summary: "Your credentials (metadata only)",
        response: { 200: z.object({ items: z.array(credentialSchema) }) },
      },
    },
    async (request) => ({
      items: (await ctx.credentials.list(requirePrincipal(request).userId)).map(presentCredential),
    }),
  );

  app.delete(
    "/v1/credentials/:provider",
    {
      schema: {
        tags,
        summary: "Delete a credential",
        params: providerParams,
        response: { 200: z.object({ ok: z.literal(true) }) },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      await ctx.credentials.remove(principal.userId, request.params.provider);
      await ctx.audit.record({
        action: "credential.remove",
        actor: principal,
        ip: request.ip,
        details: { provider: request.params.provider },
      });
      return { ok: true as const };
    },
  );

  app.post(
    "/v1/credentials/:provider/validate",
    {
      schema: {
        tags,
        summary: "Ask the provider whether the stored credential works",
        params: providerParams,
        response: { 200: credentialSchema },
      },
    },
    async (request) =>
      presentCredential(
        await ctx.credentials.validate(requirePrincipal(request).userId, request.params.provider),
      ),
  );

  app.get(
    "/v1/usage",
    {
      schema: {
        tags: ["usage"],
        summary: "Gateway usage by provider and model (requests, input and output tokens)",
        querystring: z.strictObject({ since: z.iso.datetime().optional() }),
        response: {
          200: z.object({
            items: z.array(
              z.object({
                provider: z.string(),
                model: z.string(),
                requests: z.number(),
                inputTokens: z.number(),
                outputTokens: z.number(),
              }),
            ),
          }),
        },
      },
    },
    async (request) => {
      const since = request.query.since ? Date.parse(request.query.since) : undefined;
      const items = await ctx.store.usage.summary({
        userId: requirePrincipal(request).userId,
        ...(since === undefined ? {} : { since }),
      });
      return { items };
    },
  );

  app.post(
    "/v1/sandboxes/:id/gateway",
    {
      schema: {
        tags: ["sandboxes"],
        summary: "Open the provider gateway inside the sandbox (its tools use the base URLs in their env)",
        params: sandboxIdParams,
        response: { 200: z.object({ port: z.number(), baseUrls: z.record(z.string(), z.string()) }) },
      },
    },
    async (request) => {
      const { sandbox, agent } = await ctx.sandboxes.agent(
        requirePrincipal(request).userId,
        request.params.id,
      );
      await ctx.gateway.ensureTunnel(sandbox.id, agent);
      const base = `http://127.0.0.1:${ctx.gateway.port}`;
      return {
        port: ctx.gateway.port,
        baseUrls: { anthropic: `${base}/anthropic`, openai: `${base}/openai/v1`, gemini: `${base}/gemini` },
      };
    },
  );
}
