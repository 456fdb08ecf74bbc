import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * Plans (named sets of per-user limits an admin defines; `limits` is JSON, absent = unlimited)
 * and which plan each user is on (none: the plan named "default", if there is one). Touches no
 * earlier table, so it applies in any order with other migrations numbered near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("plans")
    .addColumn("name", "text", (c) => text(c).primaryKey())
    .addColumn("description", "text", (c) => c.notNull())
    .addColumn("limits", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("user_plans")
    .addColumn("user_id", "text", (c) => text(c).primaryKey().references("users.id").onDelete("cascade"))
    .addColumn("plan_name", "text", (c) => text(c).notNull().references("plans.name"))
    .addColumn("assigned_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("user_plans_plan").on("user_plans").column("plan_name").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("user_plans").execute();
  await db.schema.dropTable("plans").execute();
}
