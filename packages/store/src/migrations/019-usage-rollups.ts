import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * Gateway usage summed per user, provider, model and hour. The gateway writes one `usage` row per
 * request; the usage roll-up job folds rows older than its window into these, so the raw table
 * stays the size of a few days' traffic while totals stay exact to the hour. Touches no earlier
 * table but `users` (by reference), so it applies in any order with migrations numbered near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("usage_hourly")
    .addColumn("user_id", "text", (c) => text(c).notNull().references("users.id").onDelete("cascade"))
    .addColumn("provider", "text", (c) => text(c).notNull())
    .addColumn("model", "text", (c) => text(c).notNull())
    .addColumn("hour", "bigint", (c) => c.notNull())
    .addColumn("requests", "bigint", (c) => c.notNull())
    .addColumn("input_tokens", "bigint", (c) => c.notNull())
    .addColumn("output_tokens", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("usage_hourly_pk", ["user_id", "provider", "model", "hour"])
    .execute();
  await db.schema.createIndex("usage_hourly_hour").on("usage_hourly").column("hour").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("usage_hourly").execute();
}
