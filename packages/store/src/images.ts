/** Images and their unpacked layers. */
import type {
  ImageConfig,
  ImageLayerRecord,
  ImageRecord,
  ImageRepository,
  ImageSource,
  ImageState,
} from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, ms, toJson } from "./codec.js";
import type { Database, ImageLayersTable, ImagesTable } from "./schema.js";

/** System images (no owner) share one scope; a user's images are scoped by their id. */
const SYSTEM_SCOPE = "";
const scopeOf = (ownerId: string | null): string => ownerId ?? SYSTEM_SCOPE;

function toImage(row: Selectable<ImagesTable>): ImageRecord {
  return {
    id: row.id,
    ownerId: row.owner_id,
    name: row.name,
    digest: row.digest,
    state: row.state as ImageState,
    layers: fromJson<string[]>(row.layers),
    config: fromJson<ImageConfig>(row.config),
    sizeBytes: int8(row.size_bytes),
    source: row.source as ImageSource,
    buildLog: row.build_log,
    error: row.error,
    createdAt: ms(row.created_at),
    updatedAt: ms(row.updated_at),
  };
}

function toLayer(row: Selectable<ImageLayersTable>): ImageLayerRecord {
  return { id: row.id, dir: row.dir, sizeBytes: int8(row.size_bytes), createdAt: ms(row.created_at) };
}

export function imageRepository(db: Kysely<Database>): ImageRepository {
  const get = async (id: string): Promise<ImageRecord | undefined> => {
    const row = await db.selectFrom("images").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toImage(row) : undefined;
  };
  const getLayer = async (id: string): Promise<ImageLayerRecord | undefined> => {
    const row = await db.selectFrom("image_layers").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toLayer(row) : undefined;
  };
  return {
    async insert(image) {
      const row = await db
        .insertInto("images")
        .values({
          id: image.id,
          owner_id: image.ownerId,
          scope: scopeOf(image.ownerId),
          name: image.name,
          digest: image.digest,
          state: image.state,
          layers: toJson(image.layers),
          config: toJson(image.config),
          size_bytes: image.sizeBytes,
          source: image.source,
          build_log: image.buildLog,
          error: image.error,
          created_at: image.createdAt,
          updated_at: image.createdAt,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toImage(row);
    },
    get,
    async getByName(ownerId, name) {
      const row = await db
        .selectFrom("images")
        .selectAll()
        .where("scope", "=", scopeOf(ownerId))
        .where("name", "=", name)
        .executeTakeFirst();
      return row ? toImage(row) : undefined;
    },
    async listVisible(userId) {
      const rows = await db
        .selectFrom("images")
        .selectAll()
        .where("scope", "in", [userId, SYSTEM_SCOPE])
        .orderBy("name")
        .orderBy("scope")
        .execute();
      return rows.map(toImage);
    },
    async listAll() {
      const rows = await db.selectFrom("images").selectAll().orderBy("created_at").orderBy("id").execute();
      return rows.map(toImage);
    },
    async update(id, patch) {
      const row = await db
        .updateTable("images")
        .set({
          updated_at: patch.updatedAt,
          ...(patch.digest === undefined ? {} : { digest: patch.digest }),
          ...(patch.state === undefined ? {} : { state: patch.state }),
          ...(patch.layers === undefined ? {} : { layers: toJson(patch.layers) }),
          ...(patch.config === undefined ? {} : { config: toJson(patch.config) }),
          ...(patch.sizeBytes === undefined ? {} : { size_bytes: patch.sizeBytes }),
          ...(patch.buildLog === undefined ? {} : { build_log: patch.buildLog }),
          ...(patch.error === undefined ? {} : { error: patch.error }),
        })
        .where("id", "=", id)
        .returningAll()
        .executeTakeFirst();
      return row ? toImage(row) : undefined;
    },
    async delete(id) {
      const result = await db.deleteFrom("images").where("id", "=", id).executeTakeFirst();
      return int8(result.numDeletedRows) > 0;
    },
    async countSandboxesUsing(digest) {
      const row = await db
        .selectFrom("sandboxes")
        .select((eb) => eb.fn.countAll<number | string>().as("count"))
        .where("image", "=", digest)
        .where("state", "!=", "destroyed")
        .executeTakeFirstOrThrow();
      return int8(row.count);
    },
    async putLayer(layer) {
      await db
        .insertInto("image_layers")
        .values({ id: layer.id, dir: layer.dir, size_bytes: layer.sizeBytes, created_at: layer.createdAt })
        .onConflict((oc) => oc.column("id").doNothing())
        .execute();
      const stored = await getLayer(layer.id);
      if (!stored) throw new Error(`image layer ${layer.id} vanished while being stored`);
      return stored;
    },
    getLayer,
    async listLayers() {
      const rows = await db.selectFrom("image_layers").selectAll().orderBy("id").execute();
      return rows.map(toLayer);
    },
    async deleteLayer(id) {
      const result = await db.deleteFrom("image_layers").where("id", "=", id).executeTakeFirst();
      return int8(result.numDeletedRows) > 0;
    },
  };
}
