/**
 * Gateway usage: one raw row per request, folded by the roll-up job into hourly sums once older
 * than its window. Every total reads both, so a roll-up never changes an answer whose `since` is
 * on an hour boundary (or inside the window, where the raw rows still are).
 */
import type { UsageRepository, UsageSummaryRow } from "@polydev/core";
import type { Kysely } from "kysely";
import { int8 } from "./codec.js";
import type { Database } from "./schema.js";

export const USAGE_HOUR_MS = 60 * 60 * 1000;

type Totals = Omit<UsageSummaryRow, "provider" | "model">;

/** Adds rows that share a key (provider, or provider and model) across the two tables. */
function merge<R extends Totals>(rows: R[], key: (row: R) => string): R[] {
  const byKey = new Map<string, R>();
  for (const row of rows) {
    const k = key(row);
    const seen = byKey.get(k);
    if (seen === undefined) byKey.set(k, { ...row });
    else {
      seen.requests += row.requests;
      seen.inputTokens += row.inputTokens;
      seen.outputTokens += row.outputTokens;
    }
  }
  return [...byKey.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export function usageRepository(db: Kysely<Database>): UsageRepository {
  const raw = (options: { userId?: string | undefined; since?: number | undefined }) => {
    let query = db.selectFrom("usage");
    if (options.userId !== undefined) query = query.where("user_id", "=", options.userId);
    if (options.since !== undefined) query = query.where("at", ">=", options.since);
    return query;
  };
  // A rolled-up hour counts from its start: with `since` inside an hour, that hour is left out.
  const hourly = (options: { userId?: string | undefined; since?: number | undefined }) => {
    let query = db.selectFrom("usage_hourly");
    if (options.userId !== undefined) query = query.where("user_id", "=", options.userId);
    if (options.since !== undefined) query = query.where("hour", ">=", options.since);
    return query;
  };

  const foldRaw = async (trx: Kysely<Database>, before: number): Promise<number> => {
    // Only rows that exist now: a row written meanwhile is left for the next roll-up.
    const last = await trx
      .selectFrom("usage")
      .where("at", "<", before)
      .select((eb) => [eb.fn.max("id").as("id"), eb.fn.countAll().as("count")])
      .executeTakeFirst();
    const count = int8(last?.count ?? 0);
    if (last?.id === null || last?.id === undefined || count === 0) return 0;
    const lastId = last.id;
    const sums = await trx
      .selectFrom("usage")
      .where("at", "<", before)
      .where("id", "<=", lastId)
      .select((eb) => [
        "user_id",
        "provider",
        "model",
        eb(eb.ref("at"), "-", eb(eb.ref("at"), "%", USAGE_HOUR_MS)).as("hour"),
        eb.fn.countAll().as("requests"),
        eb.fn.sum<number | string>("input_tokens").as("input"),
        eb.fn.sum<number | string>("output_tokens").as("output"),
      ])
      .groupBy(["user_id", "provider", "model", "hour"])
      .execute();
    for (const row of sums) {
      await trx
        .insertInto("usage_hourly")
        .values({
          user_id: row.user_id,
          provider: row.provider,
          model: row.model,
          hour: int8(row.hour),
          requests: int8(row.requests),
          input_tokens: int8(row.input),
          output_tokens: int8(row.output),
        })
        .onConflict((oc) =>
          oc.columns(["user_id", "provider", "model", "hour"]).doUpdateSet((eb) => ({
            requests: eb(eb.ref("usage_hourly.requests"), "+", eb.ref("excluded.requests")),
            input_tokens: eb(eb.ref("usage_hourly.input_tokens"), "+", eb.ref("excluded.input_tokens")),
            output_tokens: eb(eb.ref("usage_hourly.output_tokens"), "+", eb.ref("excluded.output_tokens")),
          })),
        )
        .execute();
    }
    await trx.deleteFrom("usage").where("at", "<", before).where("id", "<=", lastId).execute();
    return count;
  };

  return {
    async record(entry) {
      await db
        .insertInto("usage")
        .values({
          user_id: entry.userId,
          sandbox_id: entry.sandboxId,
          provider: entry.provider,
          model: entry.model,
          input_tokens: entry.inputTokens,
          output_tokens: entry.outputTokens,
          status: entry.status,
          at: entry.at,
        })
        .execute();
    },
    async summary(options) {
      const columns = ["provider", "model"] as const;
      const [recent, folded] = await Promise.all([
        raw(options)
          .select((eb) => [
            ...columns,
            eb.fn.countAll().as("requests"),
            eb.fn.sum<number | string>("input_tokens").as("input"),
            eb.fn.sum<number | string>("output_tokens").as("output"),
          ])
          .groupBy([...columns])
          .execute(),
        hourly(options)
          .select((eb) => [
            ...columns,
            eb.fn.sum<number | string>("requests").as("requests"),
            eb.fn.sum<number | string>("input_tokens").as("input"),
            eb.fn.sum<number | string>("output_tokens").as("output"),
          ])
          .groupBy([...columns])
          .execute(),
      ]);
      return merge(
        [...recent, ...folded].map((r) => ({
          provider: r.provider,
          model: r.model,
          requests: int8(r.requests),
          inputTokens: int8(r.input),
          outputTokens: int8(r.output),
        })),
        // Provider and model names hold no NUL: the pair's key cannot collide.
        (r) => `${r.provider}\u0000${r.model}`,
      );
    },
    async totalsByProvider(options) {
      const [recent, folded] = await Promise.all([
        raw(options)
          .select((eb) => [
            "provider",
            eb.fn.countAll().as("requests"),
            eb.fn.sum<number | string>("input_tokens").as("input"),
            eb.fn.sum<number | string>("output_tokens").as("output"),
          ])
          .groupBy("provider")
          .execute(),
        hourly(options)
          .select((eb) => [
            "provider",
            eb.fn.sum<number | string>("requests").as("requests"),
            eb.fn.sum<number | string>("input_tokens").as("input"),
            eb.fn.sum<number | string>("output_tokens").as("output"),
          ])
          .groupBy("provider")
          .execute(),
      ]);
      return merge(
        [...recent, ...folded].map((r) => ({
          provider: r.provider,
          requests: int8(r.requests),
          inputTokens: int8(r.input),
          outputTokens: int8(r.output),
        })),
        (r) => r.provider,
      );
    },
    async rollUp(before) {
      const cutoff = before - (before % USAGE_HOUR_MS);
      return db.isTransaction ? foldRaw(db, cutoff) : db.transaction().execute((trx) => foldRaw(trx, cutoff));
    },
  };
}
