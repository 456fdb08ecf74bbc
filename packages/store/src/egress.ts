/** Egress presets and the per-sandbox egress audit log. */
import type {
  EgressAuditRecord,
  EgressAuditRepository,
  EgressPresetRecord,
  EgressPresetRepository,
} from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, ms, toJson } from "./codec.js";
import type { Database, EgressAuditTable, EgressPresetsTable } from "./schema.js";

function toPreset(row: Selectable<EgressPresetsTable>): EgressPresetRecord {
  return {
    name: row.name,
    description: row.description,
    allow: fromJson<string[]>(row.allow),
    deny: fromJson<string[]>(row.deny),
    createdAt: ms(row.created_at),
    updatedAt: ms(row.updated_at),
  };
}

export function egressPresetRepository(db: Kysely<Database>): EgressPresetRepository {
  const get = async (name: string): Promise<EgressPresetRecord | undefined> => {
    const row = await db.selectFrom("egress_presets").selectAll().where("name", "=", name).executeTakeFirst();
    return row ? toPreset(row) : undefined;
  };
  return {
    async list() {
      const rows = await db.selectFrom("egress_presets").selectAll().orderBy("name").execute();
      return rows.map(toPreset);
    },
    get,
    async put(preset) {
      const row = await db
        .insertInto("egress_presets")
        .values({
          name: preset.name,
          description: preset.description,
          allow: toJson(preset.allow),
          deny: toJson(preset.deny),
          created_at: preset.createdAt,
          updated_at: preset.updatedAt,
        })
        .onConflict((oc) =>
          oc.column("name").doUpdateSet({
            description: preset.description,
            allow: toJson(preset.allow),
            deny: toJson(preset.deny),
            updated_at: preset.updatedAt,
          }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      return toPreset(row);
    },
    async delete(name) {
      const result = await db.deleteFrom("egress_presets").where("name", "=", name).executeTakeFirst();
      return int8(result.numDeletedRows) > 0;
    },
  };
}

function toAudit(row: Selectable<EgressAuditTable>): EgressAuditRecord {
  return {
    id: int8(row.id),
    sandboxId: row.sandbox_id,
    at: ms(row.at),
    kind: row.kind as EgressAuditRecord["kind"],
    host: row.host,
    address: row.address,
    port: row.port,
    decision: row.decision as EgressAuditRecord["decision"],
    reason: row.reason,
    bytesOut: int8(row.bytes_out),
    bytesIn: int8(row.bytes_in),
    durationMs: int8(row.duration_ms),
  };
}

export function egressAuditRepository(db: Kysely<Database>): EgressAuditRepository {
  return {
    async append(sandboxId, entries) {
      if (entries.length === 0) return;
      await db
        .insertInto("egress_audit")
        .values(
          entries.map((e) => ({
            sandbox_id: sandboxId,
            at: e.at,
            kind: e.kind,
            host: e.host,
            address: e.address,
            port: e.port,
            decision: e.decision,
            reason: e.reason,
            bytes_out: e.bytesOut,
            bytes_in: e.bytesIn,
            duration_ms: e.durationMs,
          })),
        )
        .execute();
    },
    async list(sandboxId, options) {
      let query = db.selectFrom("egress_audit").selectAll().where("sandbox_id", "=", sandboxId);
      if (options.beforeId !== undefined) query = query.where("id", "<", options.beforeId);
      const rows = await query.orderBy("id", "desc").limit(options.limit).execute();
      return rows.map(toAudit);
    },
    async prune(sandboxId, keep) {
      // The id of the oldest row to keep; everything of the sandbox below it goes.
      const boundary = await db
        .selectFrom("egress_audit")
        .select("id")
        .where("sandbox_id", "=", sandboxId)
        .orderBy("id", "desc")
        .offset(Math.max(0, keep - 1))
        .limit(1)
        .executeTakeFirst();
      if (!boundary) return 0;
      const result = await db
        .deleteFrom("egress_audit")
        .where("sandbox_id", "=", sandboxId)
        .where("id", "<", boundary.id)
        .executeTakeFirst();
      return int8(result.numDeletedRows);
    },
  };
}
