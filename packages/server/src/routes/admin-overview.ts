/** What an operator sees across all users: every sandbox with its owner, and counts from GROUP BY queries. */
import { SANDBOX_STATES } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requireAdmin } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { presentSandbox } from "../http/present.js";
import { listQuery, sandboxSchema } from "../http/schemas.js";

const tags = ["admin"];
const HOUR_MS = 3_600_000;
const STATS_HOURS = 24;

export const adminSandboxSchema = sandboxSchema
  .extend({ ownerId: z.string(), ownerName: z.string() })
  .meta({ id: "AdminSandbox" });

const statsSchema = z
  .object({
    users: z.number().int(),
    sandboxesByState: z.record(z.enum(SANDBOX_STATES), z.number().int()),
    runsPerHour: z
      .array(z.object({ hour: z.string(), count: z.number().int() }))
      .describe("the last 24 hours, oldest first, every hour present (the last one is the current hour)"),
    usageByProvider: z
      .array(
        z.object({
          provider: z.string(),
          requests: z.number().int(),
          inputTokens: z.number().int(),
          outputTokens: z.number().int(),
        }),
      )
      .describe("gateway traffic of every user over the same 24 hours, by provider name"),
  })
  .meta({ id: "AdminStats" });

export function adminOverviewRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.get(
    "/v1/admin/sandboxes",
    {
      schema: {
        tags,
        summary: "Every user's sandboxes with their owner, newest first",
        querystring: listQuery,
        response: {
          200: z.object({ items: z.array(adminSandboxSchema), nextCursor: z.string().nullable() }),
        },
      },
    },
    async (request) => {
      requireAdmin(request);
      const { state, limit, cursor } = request.query;
      const [page, users] = await Promise.all([
        ctx.store.sandboxes.listPage({ limit, cursor, states: state ? [state] : undefined }),
        ctx.store.users.list(),
      ]);
      const names = new Map(users.map((u) => [u.id, u.name]));
      return {
        items: page.items.map((s) => ({
          ...presentSandbox(s),
          ownerId: s.userId,
          ownerName: names.get(s.userId) ?? s.userId,
        })),
        nextCursor: page.nextCursor ?? null,
      };
    },
  );

  app.get(
    "/v1/admin/stats",
    {
      schema: {
        tags,
        summary: "Users, sandboxes by state, runs per hour and provider usage over the last 24 hours",
        response: { 200: statsSchema },
      },
    },
    async (request) => {
      requireAdmin(request);
      const currentHour = Math.floor(ctx.clock.now() / HOUR_MS) * HOUR_MS;
      const since = currentHour - (STATS_HOURS - 1) * HOUR_MS;
      const [users, sandboxesByState, runHours, usageByProvider] = await Promise.all([
        ctx.store.users.count(),
        ctx.store.sandboxes.countByState(),
        ctx.store.runs.countPerHour(since),
        ctx.store.usage.totalsByProvider({ since }),
      ]);
      const counts = new Map(runHours.map((h) => [h.hourStart, h.count]));
      const runsPerHour = Array.from({ length: STATS_HOURS }, (_, i) => {
        const hourStart = since + i * HOUR_MS;
        return { hour: new Date(hourStart).toISOString(), count: counts.get(hourStart) ?? 0 };
      });
      return { users, sandboxesByState, runsPerHour, usageByProvider };
    },
  );
}
