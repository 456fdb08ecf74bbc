import type {
  EgressPolicy,
  NetworkMode,
  Page,
  SandboxHandle,
  SandboxLogEntry,
  SandboxLogRepository,
  SandboxRecord,
  SandboxRepository,
  SandboxState,
} from "@polydev/core";
import { SANDBOX_STATES } from "@polydev/core";
import type { Kysely, Selectable } from "kysely";
import { fromJson, int8, ms, msOrNull, toJson } from "./codec.js";
import { decodeCursor, toPage } from "./paging.js";
import type { Database, SandboxesTable, SandboxLogsTable } from "./schema.js";

function toSandbox(row: Selectable<SandboxesTable>): SandboxRecord {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name ?? null,
    state: row.state as SandboxState,
    failureReason: row.failure_reason,
    driver: row.driver,
    handle: row.handle === null ? null : fromJson<SandboxHandle>(row.handle),
    cpu: row.cpu,
    memoryMb: row.memory_mb,
    diskMb: row.disk_mb,
    pidsMax: row.pids_max,
    network: row.network as NetworkMode,
    egressPolicy: row.egress_policy ? fromJson<EgressPolicy>(row.egress_policy) : null,
    env: fromJson<Record<string, string>>(row.env),
    metadata: fromJson<Record<string, string>>(row.metadata),
    timeoutMs: ms(row.timeout_ms),
    idleTimeoutMs: ms(row.idle_timeout_ms),
    createdAt: ms(row.created_at),
    updatedAt: ms(row.updated_at),
    stateChangedAt: ms(row.state_changed_at),
    lastActivityAt: ms(row.last_activity_at),
    expiresAt: ms(row.expires_at),
    destroyedAt: msOrNull(row.destroyed_at),
    image: row.image ?? null,
    node: row.node ?? null,
  };
}

export function sandboxRepository(db: Kysely<Database>): SandboxRepository {
  async function newestFirst(options: {
    userId?: string | undefined;
    limit: number;
    cursor?: string | undefined;
    states?: SandboxState[] | undefined;
  }): Promise<Page<SandboxRecord>> {
    let query = db.selectFrom("sandboxes").selectAll();
    if (options.userId !== undefined) query = query.where("user_id", "=", options.userId);
    if (options.states && options.states.length > 0) query = query.where("state", "in", options.states);
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
    return toPage(rows, options.limit, toSandbox);
  }

  const get = async (id: string): Promise<SandboxRecord | undefined> => {
    const row = await db.selectFrom("sandboxes").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toSandbox(row) : undefined;
  };
  return {
    async insert(s) {
      const row = await db
        .insertInto("sandboxes")
        .values({
          id: s.id,
          user_id: s.userId,
          name: s.name ?? null,
          state: s.state,
          failure_reason: null,
          driver: s.driver,
          handle: null,
          cpu: s.cpu,
          memory_mb: s.memoryMb,
          disk_mb: s.diskMb,
          pids_max: s.pidsMax,
          network: s.network,
          egress_policy: s.egressPolicy === null ? null : toJson(s.egressPolicy),
          env: toJson(s.env),
          metadata: toJson(s.metadata),
          timeout_ms: s.timeoutMs,
          idle_timeout_ms: s.idleTimeoutMs,
          created_at: s.createdAt,
          updated_at: s.createdAt,
          state_changed_at: s.createdAt,
          last_activity_at: s.createdAt,
          expires_at: s.expiresAt,
          destroyed_at: null,
          image: s.image ?? null,
          node: s.node ?? null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toSandbox(row);
    },
    get,
    async getForUser(userId, id) {
      const row = await db
        .selectFrom("sandboxes")
        .selectAll()
        .where("id", "=", id)
        .where("user_id", "=", userId)
        .executeTakeFirst();
      return row ? toSandbox(row) : undefined;
    },
    async getForUserByName(userId, name) {
      const row = await db
        .selectFrom("sandboxes")
        .selectAll()
        .where("user_id", "=", userId)
        .where("name", "=", name)
        .where("state", "!=", "destroyed")
        .executeTakeFirst();
      return row ? toSandbox(row) : undefined;
    },
    listForUser(userId, options) {
      return newestFirst({ ...options, userId });
    },
    listPage(options) {
      return newestFirst(options);
    },
    async listByStates(states) {
      if (states.length === 0) return [];
      const rows = await db
        .selectFrom("sandboxes")
        .selectAll()
        .where("state", "in", states)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map(toSandbox);
    },
    async listAll() {
      const rows = await db.selectFrom("sandboxes").selectAll().orderBy("created_at").orderBy("id").execute();
      return rows.map(toSandbox);
    },
    async listExpired(now) {
      const rows = await db
        .selectFrom("sandboxes")
        .selectAll()
        .where("state", "in", ["running", "hibernated", "stopped"])
        .where("expires_at", "<=", now)
        .orderBy("expires_at")
        .orderBy("id")
        .execute();
      return rows.map(toSandbox);
    },
    async listIdle(now) {
      // Plain column arithmetic compares the same on SQLite and Postgres (int8 + int8 <= int8).
      const rows = await db
        .selectFrom("sandboxes")
        .selectAll()
        .where("state", "=", "running")
        .where((eb) => eb(eb("last_activity_at", "+", eb.ref("idle_timeout_ms")), "<=", now))
        .orderBy("last_activity_at")
        .orderBy("id")
        .execute();
      return rows.map(toSandbox);
    },
    async countLiveForUser(userId) {
      const row = await db
        .selectFrom("sandboxes")
        .select((eb) => eb.fn.countAll().as("n"))
        .where("user_id", "=", userId)
        .where("state", "in", ["creating", "running", "hibernated", "stopped"])
        .executeTakeFirstOrThrow();
      return int8(row.n);
    },
    async listStoppedSince(before) {
      const rows = await db
        .selectFrom("sandboxes")
        .selectAll()
        .where("state", "=", "stopped")
        .where("state_changed_at", "<=", before)
        .orderBy("state_changed_at")
        .orderBy("id")
        .execute();
      return rows.map(toSandbox);
    },
    async setDiskMb(id, diskMb, at) {
      const row = await db
        .updateTable("sandboxes")
        .set({ disk_mb: diskMb, updated_at: at })
        .where("id", "=", id)
        .returningAll()
        .executeTakeFirst();
      return row ? toSandbox(row) : undefined;
    },
    async countByState() {
      const rows = await db
        .selectFrom("sandboxes")
        .select(["state", (eb) => eb.fn.countAll().as("n")])
        .groupBy("state")
        .execute();
      const counts = Object.fromEntries(SANDBOX_STATES.map((s) => [s, 0])) as Record<SandboxState, number>;
      for (const row of rows) counts[row.state as SandboxState] = int8(row.n);
      return counts;
    },
    async countByStateAndDriver() {
      const rows = await db
        .selectFrom("sandboxes")
        .select(["state", "driver", (eb) => eb.fn.countAll().as("n")])
        .groupBy(["state", "driver"])
        .execute();
      return rows.map((row) => ({
        state: row.state as SandboxState,
        driver: row.driver,
        count: int8(row.n),
      }));
    },
    async setHandle(id, handle) {
      await db
        .updateTable("sandboxes")
        .set({ handle: toJson(handle) })
        .where("id", "=", id)
        .execute();
    },
    async transition(id, from, to, patch) {
      if (from.length === 0) return undefined;
      // One statement, so the state check and the write cannot be split by another writer.
      const row = await db
        .updateTable("sandboxes")
        .set({
          state: to,
          updated_at: patch.at,
          state_changed_at: patch.at,
          ...(patch.failureReason === undefined ? {} : { failure_reason: patch.failureReason }),
          ...(to === "destroyed" ? { destroyed_at: patch.at } : {}),
        })
        .where("id", "=", id)
        .where("state", "in", from)
        .returningAll()
        .executeTakeFirst();
      return row ? toSandbox(row) : undefined;
    },
    async setEgressPolicy(id, policy, at) {
      const row = await db
        .updateTable("sandboxes")
        .set({ egress_policy: toJson(policy), updated_at: at })
        .where("id", "=", id)
        .returningAll()
        .executeTakeFirst();
      return row ? toSandbox(row) : undefined;
    },
    async touchActivity(id, at) {
      await db.updateTable("sandboxes").set({ last_activity_at: at }).where("id", "=", id).execute();
    },
  };
}

function toLog(row: Selectable<SandboxLogsTable>): SandboxLogEntry {
  return {
    id: int8(row.id),
    sandboxId: row.sandbox_id,
    at: ms(row.at),
    level: row.level as SandboxLogEntry["level"],
    source: row.source as SandboxLogEntry["source"],
    message: row.message,
  };
}

export function sandboxLogRepository(db: Kysely<Database>): SandboxLogRepository {
  return {
    async append(sandboxId, entries) {
      if (entries.length === 0) return;
      await db
        .insertInto("sandbox_logs")
        .values(
          entries.map((e) => ({
            sandbox_id: sandboxId,
            at: e.at,
            level: e.level,
            source: e.source,
            message: e.message,
          })),
        )
        .execute();
    },
    async list(sandboxId, options) {
      let query = db.selectFrom("sandbox_logs").selectAll().where("sandbox_id", "=", sandboxId);
      if (options.afterId !== undefined) query = query.where("id", ">", options.afterId);
      const rows = await query.orderBy("id").limit(options.limit).execute();
      return rows.map(toLog);
    },
  };
}
