import type { AuditEvent, AuditOutcome, AuditRepository, UserIdentityRepository } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, toJson } from "./codec.js";
import type { AuditEventsTable, Database } from "./schema.js";
import { JOINED_USER_COLUMNS, joinedUser } from "./users.js";

export function userIdentityRepository(db: Kysely<Database>): UserIdentityRepository {
  return {
    async find(issuer, subject) {
      const row = await db
        .selectFrom("user_identities")
        .innerJoin("users", "users.id", "user_identities.user_id")
        .select(["user_identities.user_id"])
        .select(JOINED_USER_COLUMNS)
        .where("user_identities.issuer", "=", issuer)
        .where("user_identities.subject", "=", subject)
        .executeTakeFirst();
      return row ? joinedUser(row) : undefined;
    },
    async link(identity) {
      await db
        .insertInto("user_identities")
        .values({
          issuer: identity.issuer,
          subject: identity.subject,
          user_id: identity.userId,
          created_at: identity.createdAt,
        })
        .execute();
    },
  };
}

function toAuditEvent(row: Selectable<AuditEventsTable>): AuditEvent {
  return {
    id: int8(row.id),
    at: int8(row.at),
    action: row.action,
    outcome: row.outcome as AuditOutcome,
    actorId: row.actor_id,
    actorName: row.actor_name,
    targetType: row.target_type,
    targetId: row.target_id,
    ip: row.ip,
    details: fromJson<AuditEvent["details"]>(row.details),
  };
}

export function auditRepository(db: Kysely<Database>): AuditRepository {
  return {
    async append(event) {
      await db
        .insertInto("audit_events")
        .values({
          at: event.at,
          action: event.action,
          outcome: event.outcome,
          actor_id: event.actorId,
          actor_name: event.actorName,
          target_type: event.targetType,
          target_id: event.targetId,
          ip: event.ip,
          details: toJson(event.details),
        })
        .execute();
    },
    async list(filter) {
      let query = db.selectFrom("audit_events").selectAll();
      if (filter.action !== undefined) query = query.where("action", "=", filter.action);
      if (filter.outcome !== undefined) query = query.where("outcome", "=", filter.outcome);
      if (filter.actorId !== undefined) query = query.where("actor_id", "=", filter.actorId);
      if (filter.targetId !== undefined) query = query.where("target_id", "=", filter.targetId);
      if (filter.since !== undefined) query = query.where("at", ">=", filter.since);
      if (filter.until !== undefined) query = query.where("at", "<", filter.until);
      if (filter.beforeId !== undefined) query = query.where("id", "<", filter.beforeId);
      const rows = await query
        .orderBy("id", "desc")
        .limit(filter.limit + 1)
        .execute();
      const items = rows.slice(0, filter.limit).map(toAuditEvent);
      const last = items.at(-1);
      return { items, nextCursor: rows.length > filter.limit && last ? String(last.id) : undefined };
    },
    async prune(keep, olderThan) {
      const byAge = await db.deleteFrom("audit_events").where("at", "<", olderThan).executeTakeFirst();
      // The id of the oldest row to keep; every row below it goes.
      const boundary = await db
        .selectFrom("audit_events")
        .select("id")
        .orderBy("id", "desc")
        .offset(Math.max(0, keep - 1))
        .limit(1)
        .executeTakeFirst();
      let byCount = 0n;
      if (boundary) {
        const result = await db.deleteFrom("audit_events").where("id", "<", boundary.id).executeTakeFirst();
        byCount = result.numDeletedRows;
      }
      return int8(byAge.numDeletedRows + byCount);
    },
  };
}
