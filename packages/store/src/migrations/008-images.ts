import type { Kysely } from "kysely";

/**
 * The image store: named images (a user's, or the system's with a null owner) and the unpacked
 * layer directories they list; sandboxes remember the digest of the image they were made from, so
 * an image in use is never deleted.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("sandboxes").addColumn("image", "text").execute();
  await db.schema.createIndex("sandboxes_image").on("sandboxes").column("image").execute();
  await db.schema
    .createTable("images")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("owner_id", "text", (c) => c.references("users.id").onDelete("cascade"))
    // The owner id, or "" for system images: a unique index treats NULLs as distinct, this not.
    .addColumn("scope", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("digest", "text")
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("layers", "text", (c) => c.notNull())
    .addColumn("config", "text", (c) => c.notNull())
    .addColumn("size_bytes", "bigint", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("build_log", "text", (c) => c.notNull())
    .addColumn("error", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("images_scope_name").unique().on("images").columns(["scope", "name"]).execute();
  await db.schema
    .createTable("image_layers")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("dir", "text", (c) => c.notNull())
    .addColumn("size_bytes", "bigint", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("image_layers").ifExists().execute();
  await db.schema.dropTable("images").ifExists().execute();
  await db.schema.dropIndex("sandboxes_image").ifExists().execute();
  await db.schema.alterTable("sandboxes").dropColumn("image").execute();
}
