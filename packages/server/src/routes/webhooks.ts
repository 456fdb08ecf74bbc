/** Webhooks: register, list, delete, and each one's delivery log (docs/webhooks.md). */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { errorSchema } from "../http/schemas.js";
import { presentDelivery, presentWebhook, WEBHOOK_EVENTS } from "../services/webhooks.js";

const tags = ["webhooks"];

const webhookSchema = z
  .object({
    id: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    createdAt: z.string(),
  })
  .meta({ id: "Webhook" });

const deliverySchema = z
  .object({
    id: z.string(),
    event: z.string(),
    state: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    lastStatus: z.number().int().nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "WebhookDelivery" });

const webhookParams = z.object({
  id: z.string().regex(/^whk_[A-Za-z0-9_-]{1,64}$/, "id is a webhook id (whk_…)"),
});

const DESCRIPTION = [
  "When a run or a group of runs ends, Polydev POSTs a JSON event to the URL, signed with the secret answered here once",
  '(header `Polydev-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; see docs/webhooks.md).',
  "Events: `run.finished` (every run's end), `run.failed` (failed or timed out), `group.finished` (every run of a group ended),",
  "`group.failed` (a group ended with a failed run); default all. Failed deliveries are retried with exponential back-off.",
  "URLs on loopback, private or link-local addresses are refused (403 `destination_refused`) unless the operator allows them.",
].join(" ");

export function webhookRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/webhooks",
    {
      schema: {
        tags,
        summary: "Register a webhook (its signing secret is answered only now)",
        description: DESCRIPTION,
        body: z.strictObject({
          url: z.string().min(1).max(2048, "url must be at most 2048 characters"),
          events: z
            .array(z.enum(WEBHOOK_EVENTS, { error: `events are some of ${WEBHOOK_EVENTS.join(", ")}` }))
            .min(1, "events must name at least one event, or be left out for all")
            .max(WEBHOOK_EVENTS.length)
            .optional(),
        }),
        response: {
          201: webhookSchema
            .extend({ secret: z.string().describe("the signing secret; shown only in this answer") })
            .meta({ id: "CreatedWebhook" }),
          403: errorSchema.describe("the URL resolves to an address webhooks may not reach"),
          429: errorSchema.describe("the user has as many webhooks as allowed"),
        },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      const { webhook, secret } = await ctx.webhooks.create(principal.userId, request.body);
      return reply.status(201).send({ ...presentWebhook(webhook), secret });
    },
  );

  app.get(
    "/v1/webhooks",
    {
      schema: {
        tags,
        summary: "Your webhooks (never their secrets)",
        response: { 200: z.object({ items: z.array(webhookSchema) }) },
      },
    },
    async (request) => ({
      items: (await ctx.webhooks.list(requirePrincipal(request).userId)).map(presentWebhook),
    }),
  );

  app.delete(
    "/v1/webhooks/:id",
    {
      schema: {
        tags,
        summary: "Delete a webhook and its delivery log",
        params: webhookParams,
        response: { 200: z.object({ ok: z.literal(true) }), 404: errorSchema },
      },
    },
    async (request) => {
      await ctx.webhooks.remove(requirePrincipal(request).userId, request.params.id);
      return { ok: true as const };
    },
  );

  app.get(
    "/v1/webhooks/:id/deliveries",
    {
      schema: {
        tags,
        summary: "A webhook's deliveries, newest first: state, attempts, last answer",
        params: webhookParams,
        querystring: z.strictObject({
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }),
        response: { 200: z.object({ items: z.array(deliverySchema) }), 404: errorSchema },
      },
    },
    async (request) => ({
      items: (
        await ctx.webhooks.deliveries(
          requirePrincipal(request).userId,
          request.params.id,
          request.query.limit,
        )
      ).map(presentDelivery),
    }),
  );
}
