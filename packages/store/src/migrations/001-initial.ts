import type { Kysely } from "kysely";
import { autoIncrementId, type SqlFamily } from "./sql-family.js";

/** Built with the schema builder only, so the same migration runs on SQLite and Postgres. */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const id = autoIncrementId(family);
  await db.schema
    .createTable("users")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("role", "text", (c) => c.notNull())
    .addColumn("password_hash", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("key_hash", "text", (c) => c.notNull().unique())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("last_used_at", "bigint")
    .execute();
  await db.schema.createIndex("api_keys_user").on("api_keys").column("user_id").execute();

  await db.schema
    .createTable("sandboxes")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("failure_reason", "text")
    .addColumn("driver", "text", (c) => c.notNull())
    .addColumn("handle", "text")
    .addColumn("cpu", "real", (c) => c.notNull())
    .addColumn("memory_mb", "integer", (c) => c.notNull())
    .addColumn("disk_mb", "integer", (c) => c.notNull())
    .addColumn("pids_max", "integer", (c) => c.notNull())
    .addColumn("network", "text", (c) => c.notNull())
    .addColumn("env", "text", (c) => c.notNull())
    .addColumn("metadata", "text", (c) => c.notNull())
    .addColumn("timeout_ms", "bigint", (c) => c.notNull())
    .addColumn("idle_timeout_ms", "bigint", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("state_changed_at", "bigint", (c) => c.notNull())
    .addColumn("last_activity_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("destroyed_at", "bigint")
    .execute();
  await db.schema
    .createIndex("sandboxes_user_created")
    .on("sandboxes")
    .columns(["user_id", "created_at"])
    .execute();
  await db.schema.createIndex("sandboxes_state").on("sandboxes").column("state").execute();

  await db.schema
    .createTable("sandbox_logs")
    .addColumn("id", id.type, id.build)
    .addColumn("sandbox_id", "text", (c) => c.notNull().references("sandboxes.id").onDelete("cascade"))
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("level", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("message", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("sandbox_logs_sandbox")
    .on("sandbox_logs")
    .columns(["sandbox_id", "id"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["sandbox_logs", "sandboxes", "api_keys", "users"]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
