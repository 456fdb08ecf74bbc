/** Webhooks and their delivery queue (migration 016). */
import type {
  WebhookDeliveryRecord,
  WebhookDeliveryState,
  WebhookRecord,
  WebhookRepository,
} from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, ms, msOrNull, toJson } from "./codec.js";
import type { Database, WebhookDeliveriesTable, WebhooksTable } from "./schema.js";

function toWebhook(row: Selectable<WebhooksTable>): WebhookRecord {
  return {
    id: row.id,
    userId: row.user_id,
    url: row.url,
    events: fromJson<string[]>(row.events),
    sealedSecret: row.sealed_secret,
    createdAt: ms(row.created_at),
  };
}

function toDelivery(row: Selectable<WebhookDeliveriesTable>): WebhookDeliveryRecord {
  return {
    id: row.id,
    webhookId: row.webhook_id,
    userId: row.user_id,
    event: row.event,
    eventKey: row.event_key,
    payload: row.payload,
    state: row.state as WebhookDeliveryState,
    attempts: int8(row.attempts),
    nextAttemptAt: msOrNull(row.next_attempt_at),
    lastStatus: row.last_status === null ? null : int8(row.last_status),
    lastError: row.last_error,
    createdAt: ms(row.created_at),
    updatedAt: ms(row.updated_at),
  };
}

export function webhookRepository(db: Kysely<Database>): WebhookRepository {
  return {
    async insert(webhook) {
      await db
        .insertInto("webhooks")
        .values({
          id: webhook.id,
          user_id: webhook.userId,
          url: webhook.url,
          events: toJson(webhook.events),
          sealed_secret: webhook.sealedSecret,
          created_at: webhook.createdAt,
        })
        .execute();
    },
    async get(id) {
      const row = await db.selectFrom("webhooks").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? toWebhook(row) : undefined;
    },
    async listForUser(userId) {
      const rows = await db
        .selectFrom("webhooks")
        .selectAll()
        .where("user_id", "=", userId)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map(toWebhook);
    },
    async countForUser(userId) {
      const row = await db
        .selectFrom("webhooks")
        .select((eb) => eb.fn.countAll().as("count"))
        .where("user_id", "=", userId)
        .executeTakeFirstOrThrow();
      return int8(row.count as number | string);
    },
    async delete(userId, id) {
      const owned = await db
        .selectFrom("webhooks")
        .select("id")
        .where("id", "=", id)
        .where("user_id", "=", userId)
        .executeTakeFirst();
      if (!owned) return false;
      // Explicitly, not only by the foreign key's cascade: SQLite enforces that only when asked to.
      await db.deleteFrom("webhook_deliveries").where("webhook_id", "=", id).execute();
      const result = await db.deleteFrom("webhooks").where("id", "=", id).executeTakeFirst();
      return int8(result.numDeletedRows) > 0;
    },
    async enqueue(delivery) {
      const result = await db
        .insertInto("webhook_deliveries")
        .values({
          id: delivery.id,
          webhook_id: delivery.webhookId,
          user_id: delivery.userId,
          event: delivery.event,
          event_key: delivery.eventKey,
          payload: delivery.payload,
          state: delivery.state,
          attempts: delivery.attempts,
          next_attempt_at: delivery.nextAttemptAt,
          last_status: delivery.lastStatus,
          last_error: delivery.lastError,
          created_at: delivery.createdAt,
          updated_at: delivery.updatedAt,
        })
        .onConflict((oc) => oc.columns(["webhook_id", "event_key"]).doNothing())
        .executeTakeFirst();
      return int8(result.numInsertedOrUpdatedRows ?? 0n) > 0;
    },
    async due(now, limit) {
      const rows = await db
        .selectFrom("webhook_deliveries")
        .selectAll()
        .where("state", "=", "pending")
        .where("next_attempt_at", "<=", now)
        .orderBy("next_attempt_at")
        .orderBy("id")
        .limit(limit)
        .execute();
      return rows.map(toDelivery);
    },
    async recordAttempt(id, outcome) {
      const result = await db
        .updateTable("webhook_deliveries")
        .set({
          state: outcome.state,
          attempts: outcome.attempts,
          next_attempt_at: outcome.nextAttemptAt,
          last_status: outcome.lastStatus,
          last_error: outcome.lastError,
          updated_at: outcome.updatedAt,
        })
        .where("id", "=", id)
        .where("state", "=", "pending")
        .where("attempts", "=", outcome.attempts - 1)
        .executeTakeFirst();
      return int8(result.numUpdatedRows) > 0;
    },
    async deliveries(webhookId, limit) {
      const rows = await db
        .selectFrom("webhook_deliveries")
        .selectAll()
        .where("webhook_id", "=", webhookId)
        .orderBy("created_at", "desc")
        .orderBy("id", "desc")
        .limit(limit)
        .execute();
      return rows.map(toDelivery);
    },
    async listAll() {
      const rows = await db.selectFrom("webhooks").selectAll().orderBy("id").execute();
      return rows.map(toWebhook);
    },
    async replaceSecret(id, previous, sealed) {
      const result = await db
        .updateTable("webhooks")
        .set({ sealed_secret: sealed })
        .where("id", "=", id)
        .where("sealed_secret", "=", previous)
        .executeTakeFirst();
      return int8(result.numUpdatedRows) > 0;
    },
    async pruneFinished(before) {
      const result = await db
        .deleteFrom("webhook_deliveries")
        .where("state", "in", ["delivered", "failed"])
        .where("updated_at", "<", before)
        .executeTakeFirst();
      return int8(result.numDeletedRows);
    },
  };
}
