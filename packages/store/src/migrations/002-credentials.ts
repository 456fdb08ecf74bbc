import type { Kysely } from "kysely";
import { autoIncrementId, type SqlFamily } from "./sql-family.js";

/** Credentials (sealed by the vault), sandbox gateway tokens (hashed) and gateway usage. */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const id = autoIncrementId(family);
  await db.schema
    .createTable("credentials")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("provider", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("sealed", "text", (c) => c.notNull())
    .addColumn("key_id", "text", (c) => c.notNull())
    .addColumn("metadata", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("last_used_at", "bigint")
    .addColumn("last_validated_at", "bigint")
    .addColumn("valid", "integer")
    .addUniqueConstraint("credentials_user_provider", ["user_id", "provider"])
    .execute();
  await db.schema.createIndex("credentials_key").on("credentials").column("key_id").execute();

  await db.schema
    .createTable("gateway_tokens")
    .addColumn("token_hash", "text", (c) => c.primaryKey())
    .addColumn("sandbox_id", "text", (c) => c.notNull().references("sandboxes.id").onDelete("cascade"))
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("usage")
    .addColumn("id", id.type, id.build)
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("sandbox_id", "text", (c) => c.notNull())
    .addColumn("provider", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("input_tokens", "integer", (c) => c.notNull())
    .addColumn("output_tokens", "integer", (c) => c.notNull())
    .addColumn("status", "integer", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("usage_user_at").on("usage").columns(["user_id", "at"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["usage", "gateway_tokens", "credentials"])
    await db.schema.dropTable(table).ifExists().execute();
}
