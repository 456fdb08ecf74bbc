/** Provider logins: where each runs and how it ended (the live part stays on its node). */
import type { LoginRecord, LoginRepository } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { ms } from "./codec.js";
import type { Database, LoginsTable } from "./schema.js";

function toLogin(row: Selectable<LoginsTable>): LoginRecord {
  return {
    id: row.id,
    userId: row.user_id,
    provider: row.provider,
    sandboxId: row.sandbox_id,
    node: row.node,
    ownsSandbox: row.owns_sandbox === 1,
    state: row.state,
    reason: row.reason,
    createdAt: ms(row.created_at),
    updatedAt: ms(row.updated_at),
  };
}

export function loginRepository(db: Kysely<Database>): LoginRepository {
  return {
    async put(login) {
      const values = {
        user_id: login.userId,
        provider: login.provider,
        sandbox_id: login.sandboxId,
        node: login.node,
        owns_sandbox: login.ownsSandbox ? 1 : 0,
        state: login.state,
        reason: login.reason,
        created_at: login.createdAt,
        updated_at: login.updatedAt,
      };
      await db
        .insertInto("logins")
        .values({ id: login.id, ...values })
        .onConflict((oc) => oc.column("id").doUpdateSet(values))
        .execute();
    },
    async get(id) {
      const row = await db.selectFrom("logins").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? toLogin(row) : undefined;
    },
    async listForUser(userId, limit) {
      const rows = await db
        .selectFrom("logins")
        .selectAll()
        .where("user_id", "=", userId)
        .orderBy("created_at", "desc")
        .orderBy("id", "desc")
        .limit(limit)
        .execute();
      return rows.map(toLogin);
    },
    async listForNode(node, states) {
      if (states.length === 0) return [];
      const rows = await db
        .selectFrom("logins")
        .selectAll()
        .where("node", "=", node)
        .where("state", "in", [...states])
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map(toLogin);
    },
    async deleteUpdatedBefore(before) {
      const result = await db.deleteFrom("logins").where("updated_at", "<", before).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
