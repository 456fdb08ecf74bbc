/** Background jobs for admins: each job's last run (per node for per-node jobs) and its outcome. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requireAdmin } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";

const jobRunSchema = z
  .object({
    job: z.string(),
    scope: z.enum(["cluster", "node"]),
    node: z.string(),
    outcome: z.enum(["running", "succeeded", "failed"]),
    error: z.string().nullable(),
    startedAt: z.string(),
    endedAt: z.string().nullable(),
  })
  .meta({ id: "JobRun" });

export function adminJobRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.get(
    "/v1/admin/jobs",
    {
      schema: {
        tags: ["admin"],
        summary:
          "Each background job's last run: cluster-wide jobs once, per-node jobs per node (node names who ran it)",
        response: { 200: z.object({ items: z.array(jobRunSchema) }) },
      },
    },
    async (request) => {
      requireAdmin(request);
      const runs = await ctx.store.jobRuns.list();
      return {
        items: runs.map((r) => ({
          job: r.job,
          scope: r.scope === "" ? ("cluster" as const) : ("node" as const),
          node: r.node,
          outcome: r.outcome,
          error: r.error,
          startedAt: new Date(r.startedAt).toISOString(),
          endedAt: r.endedAt === null ? null : new Date(r.endedAt).toISOString(),
        })),
      };
    },
  );
}
