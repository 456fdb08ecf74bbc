/** The last run of each background job (per job and scope). */
import type { JobOutcome, JobRunRecord, JobRunRepository } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { ms, msOrNull } from "./codec.js";
import type { Database, JobRunsTable } from "./schema.js";

function toJobRun(row: Selectable<JobRunsTable>): JobRunRecord {
  return {
    job: row.job,
    scope: row.scope,
    node: row.node,
    outcome: row.outcome as JobOutcome,
    error: row.error,
    startedAt: ms(row.started_at),
    endedAt: msOrNull(row.ended_at),
  };
}

export function jobRunRepository(db: Kysely<Database>): JobRunRepository {
  return {
    async put(run) {
      const values = {
        node: run.node,
        outcome: run.outcome,
        error: run.error,
        started_at: run.startedAt,
        ended_at: run.endedAt,
      };
      await db
        .insertInto("job_runs")
        .values({ job: run.job, scope: run.scope, ...values })
        .onConflict((oc) => oc.columns(["job", "scope"]).doUpdateSet(values))
        .execute();
    },
    async list() {
      const rows = await db.selectFrom("job_runs").selectAll().orderBy("job").orderBy("scope").execute();
      return rows.map(toJobRun);
    },
  };
}
