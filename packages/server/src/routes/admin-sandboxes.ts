/**
 * An admin opens any user's sandbox (its record, owner and lifecycle log) and destroys it. Only
 * these operator views: a shell, files or runs of another user's sandbox stay its owner's (the
 * /v1/sandboxes routes answer 404 for a foreign id, admins included).
 */
import type { SandboxRecord } from "@polydev/core";
import { notFound } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requireAdmin } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { presentSandbox } from "../http/present.js";
import { logEntrySchema, sandboxIdParams } from "../http/schemas.js";
import { adminSandboxSchema } from "./admin-overview.js";

const tags = ["admin"];

export function adminSandboxRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  /** By id only: names are unique per owner, not across the server. */
  async function find(id: string): Promise<SandboxRecord> {
    const record = await ctx.store.sandboxes.get(id);
    if (!record) throw notFound("sandbox", id);
    return record;
  }

  async function present(record: SandboxRecord): Promise<z.infer<typeof adminSandboxSchema>> {
    const owner = await ctx.store.users.getById(record.userId);
    return { ...presentSandbox(record), ownerId: record.userId, ownerName: owner?.name ?? record.userId };
  }

  app.get(
    "/v1/admin/sandboxes/:id",
    {
      schema: {
        tags,
        summary: "Any user's sandbox, with its owner",
        params: sandboxIdParams,
        response: { 200: adminSandboxSchema },
      },
    },
    async (request) => {
      requireAdmin(request);
      return present(await find(request.params.id));
    },
  );

  app.get(
    "/v1/admin/sandboxes/:id/logs",
    {
      schema: {
        tags,
        summary: "Any user's sandbox's lifecycle log (the newest 500 entries' oldest first)",
        params: sandboxIdParams,
        querystring: z.strictObject({
          afterId: z.coerce.number().int().min(0).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(500),
        }),
        response: { 200: z.object({ items: z.array(logEntrySchema) }) },
      },
    },
    async (request) => {
      requireAdmin(request);
      const sandbox = await find(request.params.id);
      const entries = await ctx.store.sandboxLogs.list(sandbox.id, {
        afterId: request.query.afterId,
        limit: request.query.limit,
      });
      return { items: entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })) };
    },
  );

  app.delete(
    "/v1/admin/sandboxes/:id",
    {
      schema: {
        tags,
        summary: "Destroy any user's sandbox (idempotent); its log names the admin who did",
        params: sandboxIdParams,
        response: { 200: adminSandboxSchema },
      },
    },
    async (request) => {
      const admin = requireAdmin(request);
      const record = await find(request.params.id);
      const destroyed = await ctx.sandboxes.destroyRecord(record, `destroyed by the admin ${admin.userName}`);
      await ctx.audit.record({
        action: "admin.sandbox_action",
        actor: admin,
        target: { type: "sandbox", id: record.id },
        ip: request.ip,
        details: { operation: "destroy", ownerId: record.userId },
      });
      return present(destroyed);
    },
  );
}
