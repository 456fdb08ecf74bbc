/** Plans (named per-user limits) and which plan each user is on. */
import type { PlanLimits, PlanRecord, PlanRepository } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, ms, toJson } from "./codec.js";
import type { Database, PlansTable } from "./schema.js";

function toPlan(row: Selectable<PlansTable>): PlanRecord {
  return {
    name: row.name,
    description: row.description,
    limits: fromJson<PlanLimits>(row.limits),
    createdAt: ms(row.created_at),
    updatedAt: ms(row.updated_at),
  };
}

export function planRepository(db: Kysely<Database>): PlanRepository {
  return {
    async list() {
      const rows = await db.selectFrom("plans").selectAll().orderBy("name").execute();
      return rows.map(toPlan);
    },
    async get(name) {
      const row = await db.selectFrom("plans").selectAll().where("name", "=", name).executeTakeFirst();
      return row ? toPlan(row) : undefined;
    },
    async put(plan) {
      const row = await db
        .insertInto("plans")
        .values({
          name: plan.name,
          description: plan.description,
          limits: toJson(plan.limits),
          created_at: plan.createdAt,
          updated_at: plan.updatedAt,
        })
        .onConflict((oc) =>
          oc.column("name").doUpdateSet({
            description: plan.description,
            limits: toJson(plan.limits),
            updated_at: plan.updatedAt,
          }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      return toPlan(row);
    },
    async delete(name) {
      const assigned = await db
        .selectFrom("user_plans")
        .select("user_id")
        .where("plan_name", "=", name)
        .executeTakeFirst();
      if (assigned)
        throw new PolydevError("conflict", `plan ${name} still has users; move them to another plan first`, {
          details: { field: "plan" },
        });
      const result = await db.deleteFrom("plans").where("name", "=", name).executeTakeFirst();
      return int8(result.numDeletedRows) > 0;
    },
    async assign(userId, planName, at) {
      if (planName === null) {
        await db.deleteFrom("user_plans").where("user_id", "=", userId).execute();
        return;
      }
      await db
        .insertInto("user_plans")
        .values({ user_id: userId, plan_name: planName, assigned_at: at })
        .onConflict((oc) => oc.column("user_id").doUpdateSet({ plan_name: planName, assigned_at: at }))
        .execute();
    },
    async planOf(userId) {
      const row = await db
        .selectFrom("user_plans")
        .select("plan_name")
        .where("user_id", "=", userId)
        .executeTakeFirst();
      return row?.plan_name;
    },
    async countAssigned() {
      const rows = await db
        .selectFrom("user_plans")
        .select(["plan_name", (eb) => eb.fn.countAll().as("n")])
        .groupBy("plan_name")
        .execute();
      // Without a prototype: a plan named "constructor" or "toString" must not read Object's.
      return Object.assign(
        Object.create(null) as Record<string, number>,
        Object.fromEntries(rows.map((r) => [r.plan_name, int8(r.n)])),
      );
    },
  };
}
