import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * The last run of each background job: one row per job and scope (a cluster-wide job has one
 * row whoever ran it, scope ""; a per-node job one row per node). Touches no earlier table, so it
 * applies in any order with other migrations numbered near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("job_runs")
    .addColumn("job", "text", (c) => text(c).notNull())
    .addColumn("scope", "text", (c) => text(c).notNull())
    .addColumn("node", "text", (c) => c.notNull())
    .addColumn("outcome", "text", (c) => c.notNull())
    .addColumn("error", "text")
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("ended_at", "bigint")
    .addPrimaryKeyConstraint("job_runs_pk", ["job", "scope"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("job_runs").execute();
}
