import type { Kysely } from "kysely";

/** An operator-declared HTTP(S) proxy pinned to one user's provider traffic (null: the default). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("users").addColumn("egress_proxy", "text").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("users").dropColumn("egress_proxy").execute();
}
