import type { Kysely } from "kysely";

/** Runs and their events; every event keeps its sequence number so streams resume exactly. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("runs")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("sandbox_id", "text", (c) => c.notNull())
    .addColumn("group_id", "text")
    .addColumn("agent", "text", (c) => c.notNull())
    .addColumn("prompt", "text", (c) => c.notNull())
    .addColumn("model", "text")
    .addColumn("cwd", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("exit_reason", "text")
    .addColumn("final_text", "text")
    .addColumn("input_tokens", "integer", (c) => c.notNull())
    .addColumn("output_tokens", "integer", (c) => c.notNull())
    .addColumn("timeout_ms", "bigint", (c) => c.notNull())
    .addColumn("max_turns", "integer")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("started_at", "bigint")
    .addColumn("ended_at", "bigint")
    .execute();
  await db.schema.createIndex("runs_user_created").on("runs").columns(["user_id", "created_at"]).execute();
  await db.schema.createIndex("runs_state").on("runs").column("state").execute();
  await db.schema
    .createTable("run_events")
    .addColumn("run_id", "text", (c) => c.notNull().references("runs.id").onDelete("cascade"))
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("body", "text", (c) => c.notNull())
    .addColumn("raw", "text")
    .addPrimaryKeyConstraint("run_events_pk", ["run_id", "seq"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("run_events").ifExists().execute();
  await db.schema.dropTable("runs").ifExists().execute();
}
