import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * What a run needs to take a follow-up turn (the CLI's session id, the built-in agent's message
 * history, the bytes its events have used), one row per run; and an index for a group's runs,
 * which a follow-up to a whole group reads. Touches no earlier table but `runs` (by reference
 * and an index created only if missing), so it applies in any order with migrations near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("run_conversations")
    .addColumn("run_id", "text", (c) => text(c).primaryKey().references("runs.id").onDelete("cascade"))
    .addColumn("turns", "integer", (c) => c.notNull())
    .addColumn("session_id", "text")
    .addColumn("history", "text")
    .addColumn("event_bytes", "bigint", (c) => c.notNull())
    // The names of the MCP servers the run got (JSON array): its follow-ups get them again.
    .addColumn("mcp_servers", "text")
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("runs_user_group")
    .ifNotExists()
    .on("runs")
    .columns(["user_id", "group_id"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("runs_user_group").ifExists().execute();
  await db.schema.dropTable("run_conversations").execute();
}
