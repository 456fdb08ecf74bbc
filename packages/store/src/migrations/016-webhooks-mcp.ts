import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * Webhooks (endpoint, events, sealed signing secret), their deliveries (one row per event and
 * webhook, unique on the event's key so an event is queued once whoever noticed it) and users'
 * MCP servers (unique per user and name; secret values only in `sealed`). Touches no earlier
 * table but `users` (by reference), so it applies in any order with migrations numbered near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("webhooks")
    .addColumn("id", "text", (c) => text(c).primaryKey())
    .addColumn("user_id", "text", (c) => text(c).notNull().references("users.id").onDelete("cascade"))
    .addColumn("url", "text", (c) => c.notNull())
    .addColumn("events", "text", (c) => c.notNull())
    .addColumn("sealed_secret", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("webhooks_user").on("webhooks").column("user_id").execute();
  await db.schema
    .createTable("webhook_deliveries")
    .addColumn("id", "text", (c) => text(c).primaryKey())
    .addColumn("webhook_id", "text", (c) => text(c).notNull().references("webhooks.id").onDelete("cascade"))
    .addColumn("user_id", "text", (c) => text(c).notNull())
    .addColumn("event", "text", (c) => text(c).notNull())
    .addColumn("event_key", "text", (c) => text(c).notNull())
    .addColumn("payload", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => text(c).notNull())
    .addColumn("attempts", "integer", (c) => c.notNull())
    .addColumn("next_attempt_at", "bigint")
    .addColumn("last_status", "integer")
    .addColumn("last_error", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addUniqueConstraint("webhook_deliveries_event", ["webhook_id", "event_key"])
    .execute();
  await db.schema
    .createIndex("webhook_deliveries_due")
    .on("webhook_deliveries")
    .columns(["state", "next_attempt_at"])
    .execute();
  await db.schema
    .createTable("mcp_servers")
    .addColumn("id", "text", (c) => text(c).primaryKey())
    .addColumn("user_id", "text", (c) => text(c).notNull().references("users.id").onDelete("cascade"))
    .addColumn("name", "text", (c) => text(c).notNull())
    .addColumn("transport", "text", (c) => c.notNull())
    .addColumn("command", "text")
    .addColumn("args", "text", (c) => c.notNull())
    .addColumn("url", "text")
    .addColumn("env_names", "text", (c) => c.notNull())
    .addColumn("header_names", "text", (c) => c.notNull())
    .addColumn("sealed", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addUniqueConstraint("mcp_servers_user_name", ["user_id", "name"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("mcp_servers").execute();
  await db.schema.dropTable("webhook_deliveries").execute();
  await db.schema.dropTable("webhooks").execute();
}
