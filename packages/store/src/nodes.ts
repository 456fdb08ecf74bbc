/** The servers that host sandboxes, as each last registered itself. */
import type { NodeRecord, NodeRepository } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, ms, toJson } from "./codec.js";
import type { Database, NodesTable } from "./schema.js";

function toNode(row: Selectable<NodesTable>): NodeRecord {
  return {
    name: row.name,
    url: row.url,
    drivers: fromJson<string[]>(row.drivers),
    cpuCount: row.cpu_count,
    memoryMb: ms(row.memory_mb),
    runningSandboxes: row.running_sandboxes,
    reservedMemoryMb: ms(row.reserved_memory_mb),
    startedAt: ms(row.started_at),
    refreshedAt: ms(row.refreshed_at),
    expiresAt: ms(row.expires_at),
  };
}

export function nodeRepository(db: Kysely<Database>): NodeRepository {
  return {
    async put(node) {
      const values = {
        url: node.url,
        drivers: toJson(node.drivers),
        cpu_count: node.cpuCount,
        memory_mb: node.memoryMb,
        running_sandboxes: node.runningSandboxes,
        reserved_memory_mb: node.reservedMemoryMb,
        started_at: node.startedAt,
        refreshed_at: node.refreshedAt,
        expires_at: node.expiresAt,
      };
      await db
        .insertInto("nodes")
        .values({ name: node.name, ...values })
        .onConflict((oc) => oc.column("name").doUpdateSet(values))
        .execute();
    },
    async get(name) {
      const row = await db.selectFrom("nodes").selectAll().where("name", "=", name).executeTakeFirst();
      return row ? toNode(row) : undefined;
    },
    async list() {
      return (await db.selectFrom("nodes").selectAll().orderBy("name").execute()).map(toNode);
    },
    async removeIfExpired(name, now) {
      const result = await db
        .deleteFrom("nodes")
        .where("name", "=", name)
        .where("expires_at", "<=", now)
        .executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },
  };
}
