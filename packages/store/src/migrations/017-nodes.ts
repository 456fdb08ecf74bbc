import type { Kysely } from "kysely";
import { type SqlFamily, textColumn } from "./sql-family.js";

/**
 * Nodes (the servers that host sandboxes, each refreshing its record on a lease) and the node
 * that hosts each sandbox. Existing sandboxes keep a null node: made before nodes existed, they
 * belong to the one server that ran then. Adds a table and a nullable column only, so it applies
 * in any order with other migrations numbered near it.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  const text = textColumn(family);
  await db.schema
    .createTable("nodes")
    .addColumn("name", "text", (c) => text(c).primaryKey())
    .addColumn("url", "text", (c) => c.notNull())
    .addColumn("drivers", "text", (c) => c.notNull())
    .addColumn("cpu_count", "integer", (c) => c.notNull())
    .addColumn("memory_mb", "bigint", (c) => c.notNull())
    .addColumn("running_sandboxes", "integer", (c) => c.notNull())
    .addColumn("reserved_memory_mb", "bigint", (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("refreshed_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .alterTable("sandboxes")
    .addColumn("node", "text", (c) => text(c))
    .execute();
  await db.schema.createIndex("sandboxes_node_state").on("sandboxes").columns(["node", "state"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("sandboxes_node_state").execute();
  await db.schema.alterTable("sandboxes").dropColumn("node").execute();
  await db.schema.dropTable("nodes").execute();
}
