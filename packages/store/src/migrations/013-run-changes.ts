import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * What each run in a project changed (diff, changed files, check result), one row per run, its
 * content as JSON (bounded by the server before it is written). Touches no earlier table but
 * `runs` (by reference), so it applies in any order with other migrations numbered near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("run_changes")
    .addColumn("run_id", "text", (c) => text(c).primaryKey().references("runs.id").onDelete("cascade"))
    .addColumn("body", "text", (c) => c.notNull())
    .addColumn("recorded_at", "bigint", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("run_changes").execute();
}
