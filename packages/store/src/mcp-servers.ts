/** Users' MCP server configurations (migration 016). */
import type { McpServerRecord, McpServerRepository, McpTransport } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, ms, toJson } from "./codec.js";
import type { Database, McpServersTable } from "./schema.js";

function toMcpServer(row: Selectable<McpServersTable>): McpServerRecord {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    transport: row.transport as McpTransport,
    command: row.command,
    args: fromJson<string[]>(row.args),
    url: row.url,
    envNames: fromJson<string[]>(row.env_names),
    headerNames: fromJson<string[]>(row.header_names),
    sealed: row.sealed,
    createdAt: ms(row.created_at),
  };
}

export function mcpServerRepository(db: Kysely<Database>): McpServerRepository {
  return {
    async insert(server) {
      await db
        .insertInto("mcp_servers")
        .values({
          id: server.id,
          user_id: server.userId,
          name: server.name,
          transport: server.transport,
          command: server.command,
          args: toJson(server.args),
          url: server.url,
          env_names: toJson(server.envNames),
          header_names: toJson(server.headerNames),
          sealed: server.sealed,
          created_at: server.createdAt,
        })
        .execute();
    },
    async listForUser(userId) {
      const rows = await db
        .selectFrom("mcp_servers")
        .selectAll()
        .where("user_id", "=", userId)
        .orderBy("name")
        .execute();
      return rows.map(toMcpServer);
    },
    async countForUser(userId) {
      const row = await db
        .selectFrom("mcp_servers")
        .select((eb) => eb.fn.countAll().as("count"))
        .where("user_id", "=", userId)
        .executeTakeFirstOrThrow();
      return int8(row.count as number | string);
    },
    async listAll() {
      const rows = await db.selectFrom("mcp_servers").selectAll().orderBy("id").execute();
      return rows.map(toMcpServer);
    },
    async replaceSealed(id, previous, sealed) {
      const result = await db
        .updateTable("mcp_servers")
        .set({ sealed })
        .where("id", "=", id)
        .where("sealed", "=", previous)
        .executeTakeFirst();
      return int8(result.numUpdatedRows) > 0;
    },
    async delete(userId, name) {
      const result = await db
        .deleteFrom("mcp_servers")
        .where("user_id", "=", userId)
        .where("name", "=", name)
        .executeTakeFirst();
      return int8(result.numDeletedRows) > 0;
    },
  };
}
