import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";

export function healthRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  zodApp(instance).get(
    "/healthz",
    {
      schema: {
        tags: ["health"],
        summary: "Liveness: the server answers and its database is reachable",
        security: [],
        response: {
          200: z.object({
            status: z.literal("ok"),
            driver: z.string(),
            features: z
              .array(z.string())
              .describe(
                'what the default sandbox driver can do, e.g. "egress", "durable" (stop/start), "fork"',
              ),
            drivers: z
              .array(z.object({ name: z.string(), features: z.array(z.string()), default: z.boolean() }))
              .describe('every driver this server runs; a create picks one with "driver"'),
          }),
        },
      },
    },
    async () => {
      await ctx.store.users.count();
      return {
        status: "ok" as const,
        driver: ctx.driver.name,
        features: [...ctx.sandboxes.features],
        drivers: ctx.sandboxes.drivers.map((driver) => ({ ...driver, features: [...driver.features] })),
      };
    },
  );
}
