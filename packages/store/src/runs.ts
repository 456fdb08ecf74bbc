import type { RunChangesRecord, RunKeepRecord, RunRecord, RunRepository } from "@polydev/core";
import { type Kysely, type Selectable, sql, type Updateable } from "kysely";
import { fromJson, int8, ms, msOrNull, toJson } from "./codec.js";
import { decodeCursor, toPage } from "./paging.js";
import type { Database, RunKeepsTable, RunsTable } from "./schema.js";

function toRun(row: Selectable<RunsTable>): RunRecord {
  return {
    id: row.id,
    userId: row.user_id,
    sandboxId: row.sandbox_id,
    groupId: row.group_id,
    agent: row.agent,
    prompt: row.prompt,
    model: row.model,
    cwd: row.cwd,
    state: row.state,
    exitReason: row.exit_reason,
    finalText: row.final_text,
    inputTokens: int8(row.input_tokens),
    outputTokens: int8(row.output_tokens),
    timeoutMs: ms(row.timeout_ms),
    maxTurns: row.max_turns,
    createdAt: ms(row.created_at),
    startedAt: msOrNull(row.started_at),
    endedAt: msOrNull(row.ended_at),
  };
}

function toRow(patch: Partial<RunRecord>): Updateable<RunsTable> {
  const row: Updateable<RunsTable> = {};
  if (patch.exitReason !== undefined) row.exit_reason = patch.exitReason;
  if (patch.finalText !== undefined) row.final_text = patch.finalText;
  if (patch.inputTokens !== undefined) row.input_tokens = patch.inputTokens;
  if (patch.outputTokens !== undefined) row.output_tokens = patch.outputTokens;
  if (patch.startedAt !== undefined) row.started_at = patch.startedAt;
  if (patch.endedAt !== undefined) row.ended_at = patch.endedAt;
  return row;
}

function toKeep(row: Selectable<RunKeepsTable>): RunKeepRecord {
  return {
    runId: row.run_id,
    groupId: row.group_id,
    branch: row.branch,
    commit: row.commit_sha,
    merged: Number(row.merged) === 1,
    pushed: Number(row.pushed) === 1,
    pullRequestUrl: row.pull_request_url,
    keptAt: ms(row.kept_at),
  };
}

const HOUR_MS = 3_600_000;

export function runRepository(db: Kysely<Database>): RunRepository {
  const get = async (id: string) => {
    const row = await db.selectFrom("runs").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toRun(row) : undefined;
  };
  return {
    async insert(run) {
      await db
        .insertInto("runs")
        .values({
          id: run.id,
          user_id: run.userId,
          sandbox_id: run.sandboxId,
          group_id: run.groupId,
          agent: run.agent,
          prompt: run.prompt,
          model: run.model,
          cwd: run.cwd,
          state: run.state,
          exit_reason: run.exitReason,
          final_text: run.finalText,
          input_tokens: run.inputTokens,
          output_tokens: run.outputTokens,
          timeout_ms: run.timeoutMs,
          max_turns: run.maxTurns,
          created_at: run.createdAt,
          started_at: run.startedAt,
          ended_at: run.endedAt,
        })
        .execute();
    },
    get,
    async putChanges(changes) {
      const { runId, recordedAt, ...content } = changes;
      const body = JSON.stringify(content);
      await db
        .insertInto("run_changes")
        .values({ run_id: runId, body, recorded_at: recordedAt })
        .onConflict((oc) => oc.column("run_id").doUpdateSet({ body, recorded_at: recordedAt }))
        .execute();
    },
    async putKeep(keep) {
      const values = {
        group_id: keep.groupId,
        branch: keep.branch,
        commit_sha: keep.commit,
        merged: keep.merged ? 1 : 0,
        pushed: keep.pushed ? 1 : 0,
        pull_request_url: keep.pullRequestUrl,
        kept_at: keep.keptAt,
      };
      await db
        .insertInto("run_keeps")
        .values({ run_id: keep.runId, ...values })
        .onConflict((oc) => oc.column("run_id").doUpdateSet(values))
        .execute();
    },
    async getKeep(runId) {
      const row = await db.selectFrom("run_keeps").selectAll().where("run_id", "=", runId).executeTakeFirst();
      return row ? toKeep(row) : undefined;
    },
    async keepsOfGroup(groupId) {
      const rows = await db
        .selectFrom("run_keeps")
        .selectAll()
        .where("group_id", "=", groupId)
        .orderBy("kept_at")
        .orderBy("run_id")
        .execute();
      return rows.map(toKeep);
    },
    async getChanges(runId) {
      const row = await db
        .selectFrom("run_changes")
        .selectAll()
        .where("run_id", "=", runId)
        .executeTakeFirst();
      if (!row) return undefined;
      const content = JSON.parse(row.body) as Omit<RunChangesRecord, "runId" | "recordedAt">;
      return { ...content, runId: row.run_id, recordedAt: ms(row.recorded_at) };
    },
    async getForUser(userId, id) {
      const row = await db
        .selectFrom("runs")
        .selectAll()
        .where("id", "=", id)
        .where("user_id", "=", userId)
        .executeTakeFirst();
      return row ? toRun(row) : undefined;
    },
    async listForUser(userId, options) {
      let query = db.selectFrom("runs").selectAll().where("user_id", "=", userId);
      if (options.groupId !== undefined) query = query.where("group_id", "=", options.groupId);
      const after = decodeCursor(options.cursor);
      if (after) {
        query = query.where((eb) =>
          eb.or([
            eb("created_at", "<", after.createdAt),
            eb.and([eb("created_at", "=", after.createdAt), eb("id", "<", after.id)]),
          ]),
        );
      }
      const rows = await query
        .orderBy("created_at", "desc")
        .orderBy("id", "desc")
        .limit(options.limit + 1)
        .execute();
      return toPage(rows, options.limit, toRun);
    },
    async listByGroup(groupId) {
      const rows = await db
        .selectFrom("runs")
        .selectAll()
        .where("group_id", "=", groupId)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map(toRun);
    },
    async listByStates(states) {
      if (states.length === 0) return [];
      return (await db.selectFrom("runs").selectAll().where("state", "in", states).execute()).map(toRun);
    },
    async transition(id, from, to, patch) {
      if (from.length === 0) return undefined;
      const row = await db
        .updateTable("runs")
        .set({ ...toRow(patch), state: to })
        .where("id", "=", id)
        .where("state", "in", from)
        .returningAll()
        .executeTakeFirst();
      return row ? toRun(row) : undefined;
    },
    async countForUserSince(userId, since) {
      const row = await db
        .selectFrom("runs")
        .select((eb) => eb.fn.countAll().as("n"))
        .where("user_id", "=", userId)
        .where("created_at", ">=", since)
        .executeTakeFirstOrThrow();
      return int8(row.n);
    },
    async countPerHour(since) {
      // Integer division on an int8 column truncates in SQLite and Postgres alike.
      const hour = sql<number | string>`created_at / ${sql.lit(HOUR_MS)}`;
      const rows = await db
        .selectFrom("runs")
        .select((eb) => [hour.as("hour"), eb.fn.countAll().as("n")])
        .where("created_at", ">=", since)
        .groupBy(hour)
        .orderBy(hour)
        .execute();
      return rows.map((r) => ({ hourStart: int8(r.hour) * HOUR_MS, count: int8(r.n) }));
    },
    async appendEvent(event) {
      await db
        .insertInto("run_events")
        .values({ run_id: event.runId, seq: event.seq, at: event.at, body: event.body, raw: event.raw })
        .execute();
    },
    async events(runId, afterSeq, limit) {
      const rows = await db
        .selectFrom("run_events")
        .selectAll()
        .where("run_id", "=", runId)
        .where("seq", ">", afterSeq)
        .orderBy("seq")
        .limit(limit)
        .execute();
      return rows.map((r) => ({ runId: r.run_id, seq: r.seq, at: ms(r.at), body: r.body, raw: r.raw }));
    },
    async lastEventSeq(runId) {
      const row = await db
        .selectFrom("run_events")
        .select((eb) => eb.fn.max("seq").as("last"))
        .where("run_id", "=", runId)
        .executeTakeFirst();
      return row?.last === null || row?.last === undefined ? 0 : int8(row.last);
    },
    async listForGroup(userId, groupId) {
      const rows = await db
        .selectFrom("runs")
        .selectAll()
        .where("user_id", "=", userId)
        .where("group_id", "=", groupId)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map(toRun);
    },
    async putConversation(conversation) {
      const values = {
        turns: conversation.turns,
        session_id: conversation.sessionId,
        history: conversation.history,
        event_bytes: conversation.eventBytes,
        mcp_servers: conversation.mcpServers.length > 0 ? toJson(conversation.mcpServers) : null,
        updated_at: conversation.updatedAt,
      };
      await db
        .insertInto("run_conversations")
        .values({ run_id: conversation.runId, ...values })
        .onConflict((oc) => oc.column("run_id").doUpdateSet(values))
        .execute();
    },
    async getConversation(runId) {
      const row = await db
        .selectFrom("run_conversations")
        .selectAll()
        .where("run_id", "=", runId)
        .executeTakeFirst();
      if (!row) return undefined;
      return {
        runId: row.run_id,
        turns: row.turns,
        sessionId: row.session_id,
        history: row.history,
        eventBytes: int8(row.event_bytes),
        mcpServers: row.mcp_servers === null ? [] : fromJson<string[]>(row.mcp_servers),
        updatedAt: ms(row.updated_at),
      };
    },
  };
}
