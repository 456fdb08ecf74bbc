/**
 * Plans and quotas: admins define plans (named per-user limits) and put users on them; anyone
 * reads their own plan and what they use of it.
 */
import { notFound } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requireAdmin, requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { errorSchema, idParams } from "../http/schemas.js";
import type { QuotaUsage } from "../services/quotas.js";

const planName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "plan names are 1–63 lowercase letters, digits, '.', '_' or '-'");

const count = (what: string) => z.number().int().min(0).max(1_000_000_000).optional().describe(what);
export const planLimitsSchema = z
  .strictObject({
    runningSandboxes: count("sandboxes creating, running or hibernated at once"),
    cpu: z.number().min(0).max(1_000_000).optional().describe("total CPUs of those sandboxes"),
    memoryMb: count("total memory (MiB) of those sandboxes"),
    diskMb: count("total disk (MiB) of every sandbox not destroyed (stopped ones included)"),
    runsPerHour: count("runs started in the last hour"),
    tokensPerMonth: z
      .number()
      .int()
      .min(0)
      .max(Number.MAX_SAFE_INTEGER)
      .optional()
      .describe("provider tokens (input + output) since the start of the UTC month"),
    costPerMonthUsd: z
      .number()
      .min(0)
      .max(1_000_000_000)
      .optional()
      .describe(
        "USD since the start of the UTC month, by the operator's model prices (POLYDEV_MODEL_PRICES)",
      ),
    requestsPerMinute: count("API requests per key per minute"),
  })
  .meta({ id: "PlanLimits" });

const planSchema = z
  .object({
    name: z.string(),
    description: z.string(),
    limits: planLimitsSchema,
    users: z.number().int().describe("users put on this plan (the default plan also covers users on none)"),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Plan" });

const quotaSchema = z
  .object({
    plan: z.string().nullable().describe("the plan that applies (null: none, unlimited)"),
    limits: planLimitsSchema,
    used: z.object({
      runningSandboxes: z.number(),
      cpu: z.number(),
      memoryMb: z.number(),
      diskMb: z.number(),
      runsPerHour: z.number(),
      tokensPerMonth: z.number(),
      costPerMonthUsd: z.number(),
    }),
  })
  .meta({ id: "Quota" });

const present = (usage: QuotaUsage) => usage;

export function planRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);
  const nameParams = z.strictObject({ name: planName });

  app.get(
    "/v1/admin/plans",
    {
      schema: {
        tags: ["admin"],
        summary: "List plans with how many users are on each",
        response: { 200: z.object({ items: z.array(planSchema) }) },
      },
    },
    async (request) => {
      requireAdmin(request);
      const [plans, assigned] = await Promise.all([ctx.store.plans.list(), ctx.store.plans.countAssigned()]);
      return {
        items: plans.map((p) => ({
          ...p,
          users: assigned.get(p.name) ?? 0,
          createdAt: new Date(p.createdAt).toISOString(),
          updatedAt: new Date(p.updatedAt).toISOString(),
        })),
      };
    },
  );

  app.put(
    "/v1/admin/plans/:name",
    {
      schema: {
        tags: ["admin"],
        summary: 'Create or replace a plan; the one named "default" applies to users put on no plan',
        params: nameParams,
        body: z.strictObject({
          description: z.string().max(500).default(""),
          limits: planLimitsSchema.describe("absent limits are unlimited"),
        }),
        response: { 200: planSchema },
      },
    },
    async (request) => {
      requireAdmin(request);
      const now = ctx.clock.now();
      const plan = await ctx.store.plans.put({
        name: request.params.name,
        description: request.body.description,
        limits: request.body.limits,
        createdAt: now,
        updatedAt: now,
      });
      ctx.quotas.forget();
      const assigned = await ctx.store.plans.countAssigned();
      return {
        ...plan,
        users: assigned.get(plan.name) ?? 0,
        createdAt: new Date(plan.createdAt).toISOString(),
        updatedAt: new Date(plan.updatedAt).toISOString(),
      };
    },
  );

  app.delete(
    "/v1/admin/plans/:name",
    {
      schema: {
        tags: ["admin"],
        summary: "Delete a plan nobody is on (409 while users are)",
        params: nameParams,
        response: { 204: z.null(), 404: errorSchema, 409: errorSchema },
      },
    },
    async (request, reply) => {
      requireAdmin(request);
      if (!(await ctx.store.plans.delete(request.params.name))) throw notFound("plan", request.params.name);
      ctx.quotas.forget();
      return reply.status(204).send(null);
    },
  );

  app.put(
    "/v1/admin/users/:id/plan",
    {
      schema: {
        tags: ["admin"],
        summary: "Put a user on a plan, or (null) back on the default plan",
        params: idParams,
        body: z.strictObject({ plan: planName.nullable() }),
        response: { 200: quotaSchema, 404: errorSchema },
      },
    },
    async (request) => {
      requireAdmin(request);
      const user = await ctx.store.users.getById(request.params.id);
      if (!user) throw notFound("user", request.params.id);
      const name = request.body.plan;
      if (name !== null && !(await ctx.store.plans.get(name))) throw notFound("plan", name);
      await ctx.store.plans.assign(user.id, name, ctx.clock.now());
      ctx.quotas.forget();
      return present(await ctx.quotas.usage(user.id));
    },
  );

  app.get(
    "/v1/admin/users/:id/quota",
    {
      schema: {
        tags: ["admin"],
        summary: "A user's plan, its limits and what the user uses of them",
        params: idParams,
        response: { 200: quotaSchema, 404: errorSchema },
      },
    },
    async (request) => {
      requireAdmin(request);
      const user = await ctx.store.users.getById(request.params.id);
      if (!user) throw notFound("user", request.params.id);
      return present(await ctx.quotas.usage(user.id));
    },
  );

  app.get(
    "/v1/me/quota",
    {
      schema: {
        tags: ["users"],
        summary: "Your plan, its limits and what you use of them",
        response: { 200: quotaSchema },
      },
    },
    async (request) => present(await ctx.quotas.usage(requirePrincipal(request).userId)),
  );
}
