import type { Kysely } from "kysely";
import { autoIncrementId, type SqlFamily, textColumn } from "./sql-family.js";

/**
 * Identity: API keys that expire, accounts of external OIDC issuers linked to users by
 * (issuer, subject), and the audit log of security-relevant actions. The audit table holds no
 * secrets and is pruned by count and age (see the server's AuditLog).
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema.alterTable("api_keys").addColumn("expires_at", "bigint").execute();
  await db.schema
    .createTable("user_identities")
    .addColumn("issuer", "text", (c) => text(c.notNull()))
    .addColumn("subject", "text", (c) => text(c.notNull()))
    .addColumn("user_id", "text", (c) => text(c.notNull().references("users.id").onDelete("cascade")))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("user_identities_pk", ["issuer", "subject"])
    .execute();
  await db.schema.createIndex("user_identities_user").on("user_identities").column("user_id").execute();
  const id = autoIncrementId(family);
  await db.schema
    .createTable("audit_events")
    .addColumn("id", id.type, id.build)
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("action", "text", (c) => text(c.notNull()))
    .addColumn("outcome", "text", (c) => text(c.notNull()))
    // No foreign keys: the log outlives the users and keys it names.
    .addColumn("actor_id", "text", text)
    .addColumn("actor_name", "text", text)
    .addColumn("target_type", "text", text)
    .addColumn("target_id", "text", text)
    .addColumn("ip", "text", text)
    .addColumn("details", "text", (c) => text(c.notNull()))
    .execute();
  await db.schema.createIndex("audit_events_at").on("audit_events").column("at").execute();
  await db.schema.createIndex("audit_events_action").on("audit_events").columns(["action", "id"]).execute();
  await db.schema.createIndex("audit_events_actor").on("audit_events").columns(["actor_id", "id"]).execute();
  await db.schema
    .createIndex("audit_events_target")
    .on("audit_events")
    .columns(["target_id", "id"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("audit_events").ifExists().execute();
  await db.schema.dropTable("user_identities").ifExists().execute();
  await db.schema.alterTable("api_keys").dropColumn("expires_at").execute();
}
