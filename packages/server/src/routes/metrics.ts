import type { FastifyInstance } from "fastify";
import { requireAdmin } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";

/** Prometheus metrics, for admins: a scraper sends an admin API key as a bearer token. */
export function metricsRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);
  app.get(
    "/metrics",
    {
      schema: {
        tags: ["admin"],
        summary: "Prometheus metrics (admin)",
      },
    },
    async (request, reply) => {
      requireAdmin(request);
      return reply.type(ctx.metrics.contentType).send(await ctx.metrics.text());
    },
  );
}
