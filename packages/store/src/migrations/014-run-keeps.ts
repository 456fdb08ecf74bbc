import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * A run's change kept in its project (POST /v1/runs/:id/keep): the branch and commit made, and
 * whether it was merged, pushed and opened as a pull request. One row per run (a keep repeated
 * replaces it). `group_id` lets a second keep of the same group be reported. Touches no earlier
 * table but `runs` (by reference), so it applies in any order with migrations numbered near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("run_keeps")
    .addColumn("run_id", "text", (c) => text(c).primaryKey().references("runs.id").onDelete("cascade"))
    .addColumn("group_id", "text", (c) => text(c))
    .addColumn("branch", "text", (c) => c.notNull())
    .addColumn("commit_sha", "text", (c) => c.notNull())
    .addColumn("merged", "integer", (c) => c.notNull())
    .addColumn("pushed", "integer", (c) => c.notNull())
    .addColumn("pull_request_url", "text")
    .addColumn("kept_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("run_keeps_group").on("run_keeps").column("group_id").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("run_keeps").execute();
}
