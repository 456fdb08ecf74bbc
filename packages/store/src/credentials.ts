import type {
  CredentialKind,
  CredentialRecord,
  CredentialRepository,
  GatewayTokenRepository,
} from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, ms, msOrNull, toJson } from "./codec.js";
import type { CredentialsTable, Database } from "./schema.js";

function toCredential(row: Selectable<CredentialsTable>): CredentialRecord {
  return {
    id: row.id,
    userId: row.user_id,
    provider: row.provider,
    kind: row.kind as CredentialKind,
    sealed: row.sealed,
    keyId: row.key_id,
    metadata: fromJson<Record<string, string>>(row.metadata),
    createdAt: ms(row.created_at),
    updatedAt: ms(row.updated_at),
    lastUsedAt: msOrNull(row.last_used_at),
    lastValidatedAt: msOrNull(row.last_validated_at),
    valid: row.valid === null ? null : row.valid === 1,
  };
}

export function credentialRepository(db: Kysely<Database>): CredentialRepository {
  const get = async (userId: string, provider: string) => {
    const row = await db
      .selectFrom("credentials")
      .selectAll()
      .where("user_id", "=", userId)
      .where("provider", "=", provider)
      .executeTakeFirst();
    return row ? toCredential(row) : undefined;
  };
  return {
    async upsert(record) {
      await db
        .insertInto("credentials")
        .values({
          id: record.id,
          user_id: record.userId,
          provider: record.provider,
          kind: record.kind,
          sealed: record.sealed,
          key_id: record.keyId,
          metadata: toJson(record.metadata),
          created_at: record.createdAt,
          updated_at: record.createdAt,
          last_used_at: null,
          last_validated_at: null,
          valid: null,
        })
        .onConflict((oc) =>
          oc.columns(["user_id", "provider"]).doUpdateSet({
            kind: record.kind,
            sealed: record.sealed,
            key_id: record.keyId,
            metadata: toJson(record.metadata),
            updated_at: record.createdAt,
            last_validated_at: null,
            valid: null,
          }),
        )
        .execute();
      const stored = await get(record.userId, record.provider);
      if (!stored) throw new Error("credential vanished right after it was stored");
      return stored;
    },
    get,
    async listForUser(userId) {
      const rows = await db
        .selectFrom("credentials")
        .selectAll()
        .where("user_id", "=", userId)
        .orderBy("provider")
        .execute();
      return rows.map(toCredential);
    },
    async listAll() {
      return (await db.selectFrom("credentials").selectAll().orderBy("id").execute()).map(toCredential);
    },
    async delete(userId, provider) {
      const result = await db
        .deleteFrom("credentials")
        .where("user_id", "=", userId)
        .where("provider", "=", provider)
        .executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },
    async markUsed(id, at) {
      await db.updateTable("credentials").set({ last_used_at: at }).where("id", "=", id).execute();
    },
    async markValidated(id, at, valid) {
      await db
        .updateTable("credentials")
        .set({ last_validated_at: at, valid: valid ? 1 : 0 })
        .where("id", "=", id)
        .execute();
    },
    async replaceSealed(id, previous, sealed, keyId) {
      const result = await db
        .updateTable("credentials")
        .set({ sealed, key_id: keyId })
        .where("id", "=", id)
        .where("sealed", "=", previous)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
    async countByKeyId(keyId) {
      const row = await db
        .selectFrom("credentials")
        .select((eb) => eb.fn.countAll().as("n"))
        .where("key_id", "=", keyId)
        .executeTakeFirstOrThrow();
      return int8(row.n);
    },
  };
}

export function gatewayTokenRepository(db: Kysely<Database>): GatewayTokenRepository {
  return {
    async create(record) {
      await db
        .insertInto("gateway_tokens")
        .values({
          token_hash: record.tokenHash,
          sandbox_id: record.sandboxId,
          user_id: record.userId,
          created_at: record.createdAt,
        })
        .execute();
    },
    async findByHash(tokenHash) {
      const row = await db
        .selectFrom("gateway_tokens")
        .selectAll()
        .where("token_hash", "=", tokenHash)
        .executeTakeFirst();
      return row
        ? {
            tokenHash: row.token_hash,
            sandboxId: row.sandbox_id,
            userId: row.user_id,
            createdAt: ms(row.created_at),
          }
        : undefined;
    },
  };
}
