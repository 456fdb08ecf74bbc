import type { Kysely } from "kysely";
import { sql } from "kysely";

/**
 * Sandbox names: optional, unique per user among sandboxes that are not destroyed. The index is
 * partial (SQLite and Postgres both have them), so a destroyed sandbox frees its name and the
 * database, not a read-then-write in the server, decides a race between two creates.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("sandboxes").addColumn("name", "text").execute();
  await db.schema
    .createIndex("sandboxes_user_name")
    .on("sandboxes")
    .columns(["user_id", "name"])
    .unique()
    .where(sql.ref("name"), "is not", null)
    .where(sql.ref("state"), "!=", "destroyed")
    .execute();
  // The inactivity sweep reads stopped sandboxes by when they stopped.
  await db.schema
    .createIndex("sandboxes_state_changed")
    .on("sandboxes")
    .columns(["state", "state_changed_at"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("sandboxes_state_changed").ifExists().execute();
  await db.schema.dropIndex("sandboxes_user_name").ifExists().execute();
  await db.schema.alterTable("sandboxes").dropColumn("name").execute();
}
