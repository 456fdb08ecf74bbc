import type { ApiKeyRecord, ApiKeyRepository, UserRecord, UserRepository, UserRole } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { mapWriteError, ms, msOrNull } from "./codec.js";
import type { ApiKeysTable, Database, UsersTable } from "./schema.js";

function toUser(row: Selectable<UsersTable>): UserRecord {
  return {
    id: row.id,
    name: row.name,
    role: row.role as UserRole,
    passwordHash: row.password_hash,
    createdAt: ms(row.created_at),
  };
}

function toKey(row: Selectable<ApiKeysTable>): ApiKeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    keyHash: row.key_hash,
    prefix: row.prefix,
    createdAt: ms(row.created_at),
    lastUsedAt: msOrNull(row.last_used_at),
  };
}

export function userRepository(db: Kysely<Database>): UserRepository {
  return {
    async create(user) {
      await db
        .insertInto("users")
        .values({
          id: user.id,
          name: user.name,
          role: user.role,
          password_hash: user.passwordHash,
          created_at: user.createdAt,
        })
        .execute()
        .catch((error: unknown) => mapWriteError(error, `a user named "${user.name}"`));
      return user;
    },
    async getById(id) {
      const row = await db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? toUser(row) : undefined;
    },
    async getByName(name) {
      const row = await db.selectFrom("users").selectAll().where("name", "=", name).executeTakeFirst();
      return row ? toUser(row) : undefined;
    },
    async list() {
      const rows = await db.selectFrom("users").selectAll().orderBy("created_at").orderBy("id").execute();
      return rows.map(toUser);
    },
    async setEgressProxy(id, proxyUrl) {
      await db.updateTable("users").set({ egress_proxy: proxyUrl }).where("id", "=", id).execute();
    },
    async getEgressProxy(id) {
      const row = await db.selectFrom("users").select("egress_proxy").where("id", "=", id).executeTakeFirst();
      return row?.egress_proxy ?? null;
    },
    async count() {
      const row = await db
        .selectFrom("users")
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}

export function apiKeyRepository(db: Kysely<Database>): ApiKeyRepository {
  return {
    async create(key) {
      await db
        .insertInto("api_keys")
        .values({
          id: key.id,
          user_id: key.userId,
          name: key.name,
          key_hash: key.keyHash,
          prefix: key.prefix,
          created_at: key.createdAt,
          last_used_at: null,
        })
        .execute()
        .catch((error: unknown) => mapWriteError(error, "that API key"));
      return { ...key, lastUsedAt: null };
    },
    async findByHash(keyHash) {
      const key = await db
        .selectFrom("api_keys")
        .selectAll()
        .where("key_hash", "=", keyHash)
        .executeTakeFirst();
      if (!key) return undefined;
      const user = await db.selectFrom("users").selectAll().where("id", "=", key.user_id).executeTakeFirst();
      return user ? { key: toKey(key), user: toUser(user) } : undefined;
    },
    async listForUser(userId) {
      const rows = await db
        .selectFrom("api_keys")
        .selectAll()
        .where("user_id", "=", userId)
        .orderBy("created_at")
        .execute();
      return rows.map(toKey);
    },
    async touch(id, at) {
      await db.updateTable("api_keys").set({ last_used_at: at }).where("id", "=", id).execute();
    },
    async delete(userId, id) {
      const result = await db
        .deleteFrom("api_keys")
        .where("id", "=", id)
        .where("user_id", "=", userId)
        .executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },
  };
}
