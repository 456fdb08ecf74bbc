import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * Provider logins, so any replica can say where a login runs and how it ended. Only a new
 * table (referencing `users`), so it applies in any order with migrations numbered near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("logins")
    .addColumn("id", "text", (c) => text(c).primaryKey())
    .addColumn("user_id", "text", (c) => text(c).notNull().references("users.id").onDelete("cascade"))
    .addColumn("provider", "text", (c) => text(c).notNull())
    .addColumn("sandbox_id", "text", (c) => text(c).notNull())
    .addColumn("node", "text", (c) => text(c).notNull())
    .addColumn("owns_sandbox", "integer", (c) => c.notNull())
    .addColumn("state", "text", (c) => text(c).notNull())
    .addColumn("reason", "text", (c) => text(c))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("logins_user").on("logins").columns(["user_id", "created_at"]).execute();
  await db.schema.createIndex("logins_node_state").on("logins").columns(["node", "state"]).execute();
  await db.schema.createIndex("logins_updated").on("logins").column("updated_at").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("logins").execute();
}
