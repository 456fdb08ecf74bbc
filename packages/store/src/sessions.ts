import type { SessionRecord, SessionRepository } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { int8, ms } from "./codec.js";
import type { Database, SessionsTable } from "./schema.js";
import { JOINED_USER_COLUMNS, joinedUser } from "./users.js";

function toSession(row: Selectable<SessionsTable>): SessionRecord {
  return {
    id: row.id,
    userId: row.user_id,
    tokenHash: row.token_hash,
    createdAt: ms(row.created_at),
    lastSeenAt: ms(row.last_seen_at),
    expiresAt: ms(row.expires_at),
  };
}

export function sessionRepository(db: Kysely<Database>): SessionRepository {
  return {
    async create(session) {
      await db
        .insertInto("sessions")
        .values({
          id: session.id,
          user_id: session.userId,
          token_hash: session.tokenHash,
          created_at: session.createdAt,
          last_seen_at: session.lastSeenAt,
          expires_at: session.expiresAt,
        })
        .execute();
      return session;
    },
    async findByTokenHash(tokenHash) {
      // One round trip: this runs on every cookie-authenticated request.
      const row = await db
        .selectFrom("sessions")
        .innerJoin("users", "users.id", "sessions.user_id")
        .selectAll("sessions")
        .select(JOINED_USER_COLUMNS)
        .where("sessions.token_hash", "=", tokenHash)
        .executeTakeFirst();
      if (!row) return undefined;
      const user = joinedUser(row);
      return { session: toSession(row), user };
    },
    async touch(id, at) {
      await db.updateTable("sessions").set({ last_seen_at: at }).where("id", "=", id).execute();
    },
    async delete(id) {
      const result = await db.deleteFrom("sessions").where("id", "=", id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    },
    async deleteForUser(userId, exceptId) {
      let query = db.deleteFrom("sessions").where("user_id", "=", userId);
      if (exceptId !== undefined) query = query.where("id", "!=", exceptId);
      const result = await query.executeTakeFirst();
      return int8(result.numDeletedRows);
    },
    async deleteExpired(now, idleBefore) {
      const result = await db
        .deleteFrom("sessions")
        .where((eb) => eb.or([eb("expires_at", "<=", now), eb("last_seen_at", "<", idleBefore)]))
        .executeTakeFirst();
      return int8(result.numDeletedRows);
    },
  };
}
