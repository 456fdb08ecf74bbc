/** The audit log for admins: newest first, paged by cursor, filtered by action, outcome, who and when. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requireAdmin } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { AUDIT_ACTIONS } from "../services/audit-log.js";

const auditEventSchema = z
  .object({
    id: z.number().int(),
    at: z.string(),
    action: z.string(),
    outcome: z.enum(["success", "failure"]),
    actorId: z.string().nullable(),
    actorName: z.string().nullable(),
    targetType: z.string().nullable(),
    targetId: z.string().nullable(),
    ip: z.string().nullable(),
    details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  })
  .meta({ id: "AuditEvent" });

const isoTime = (what: string) =>
  z.iso
    .datetime({ offset: true, error: `${what} must be an ISO 8601 date-time, e.g. 2026-12-01T00:00:00Z` })
    .optional();

export function adminAuditRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.get(
    "/v1/admin/audit",
    {
      schema: {
        tags: ["admin"],
        summary:
          "Security-relevant actions (sign-ins, keys, passwords, credentials, users, roles), newest first",
        querystring: z.strictObject({
          action: z.enum(AUDIT_ACTIONS as [string, ...string[]]).optional(),
          outcome: z.enum(["success", "failure"]).optional(),
          actorId: z.string().max(100).optional(),
          targetId: z.string().max(100).optional(),
          since: isoTime("since"),
          until: isoTime("until"),
          cursor: z
            .string()
            .regex(/^\d{1,15}$/, "cursor must be the nextCursor of the previous page")
            .optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
        response: {
          200: z.object({ items: z.array(auditEventSchema), nextCursor: z.string().nullable() }),
        },
      },
    },
    async (request) => {
      requireAdmin(request);
      const q = request.query;
      const page = await ctx.store.audit.list({
        action: q.action,
        outcome: q.outcome,
        actorId: q.actorId,
        targetId: q.targetId,
        since: q.since === undefined ? undefined : Date.parse(q.since),
        until: q.until === undefined ? undefined : Date.parse(q.until),
        beforeId: q.cursor === undefined ? undefined : Number(q.cursor),
        limit: q.limit,
      });
      return {
        items: page.items.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
        nextCursor: page.nextCursor ?? null,
      };
    },
  );
}
