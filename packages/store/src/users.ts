import type {
  ApiKeyRecord,
  ApiKeyRepository,
  NetworkChoice,
  UserRecord,
  UserRepository,
  UserRole,
} from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, ms, msOrNull, toJson } from "./codec.js";
import type { ApiKeysTable, Database, UsersTable } from "./schema.js";

type UserColumns = Pick<Selectable<UsersTable>, "id" | "name" | "role" | "password_hash" | "created_at">;

export function toUser(row: UserColumns): UserRecord {
  return {
    id: row.id,
    name: row.name,
    role: row.role as UserRole,
    passwordHash: row.password_hash,
    createdAt: ms(row.created_at),
  };
}

/** The owner's columns, for a query that joins `users` to a row that has `user_id`. */
export const JOINED_USER_COLUMNS = [
  "users.name as user_name",
  "users.role as user_role",
  "users.password_hash as user_password_hash",
  "users.created_at as user_created_at",
] as const;

export function joinedUser(row: {
  user_id: string;
  user_name: string;
  user_role: UserColumns["role"];
  user_password_hash: UserColumns["password_hash"];
  user_created_at: UserColumns["created_at"];
}): UserRecord {
  return toUser({
    id: row.user_id,
    name: row.user_name,
    role: row.user_role,
    password_hash: row.user_password_hash,
    created_at: row.user_created_at,
  });
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
    expiresAt: msOrNull(row.expires_at ?? null),
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
        .execute();
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
    async setNetworkDefault(id, network) {
      await db
        .updateTable("users")
        .set({ network_default: network === null ? null : toJson(network) })
        .where("id", "=", id)
        .execute();
    },
    async getNetworkDefault(id) {
      const row = await db
        .selectFrom("users")
        .select("network_default")
        .where("id", "=", id)
        .executeTakeFirst();
      return row?.network_default ? fromJson<NetworkChoice>(row.network_default) : null;
    },
    async setPasswordHash(id, passwordHash) {
      await db.updateTable("users").set({ password_hash: passwordHash }).where("id", "=", id).execute();
    },
    async setRole(id, role) {
      await db.updateTable("users").set({ role }).where("id", "=", id).execute();
    },
    async count() {
      const row = await db
        .selectFrom("users")
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirstOrThrow();
      return int8(row.n);
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
          expires_at: key.expiresAt ?? null,
        })
        .execute();
      return { ...key, lastUsedAt: null, expiresAt: key.expiresAt ?? null };
    },
    async findByHash(keyHash) {
      // One round trip: this runs on every API request.
      const row = await db
        .selectFrom("api_keys")
        .innerJoin("users", "users.id", "api_keys.user_id")
        .selectAll("api_keys")
        .select(JOINED_USER_COLUMNS)
        .where("api_keys.key_hash", "=", keyHash)
        .executeTakeFirst();
      if (!row) return undefined;
      const user = joinedUser(row);
      return { key: toKey(row), user };
    },
    async listForUser(userId) {
      const rows = await db
        .selectFrom("api_keys")
        .selectAll()
        .where("user_id", "=", userId)
        .orderBy("created_at")
        .orderBy("id")
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
      return result.numDeletedRows > 0n;
    },
  };
}
