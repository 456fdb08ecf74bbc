import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { openSqliteConnection, openSqliteStore, sqliteKysely } from "./sqlite.js";
import { createStore } from "./store.js";
import { runStoreContract } from "./testing/store-contract.js";

const dirs: string[] = [];
async function freshFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-store-"));
  dirs.push(dir);
  return join(dir, "data", "polydev.db");
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

runStoreContract("sqlite file", async () => openSqliteStore({ file: await freshFile() }));

const user = (id: string) => ({ id, name: id, role: "user" as const, passwordHash: null, createdAt: 1 });
const sandbox = (id: string, userId: string) => ({
  id,
  userId,
  state: "creating" as const,
  driver: "namespace",
  cpu: 1,
  memoryMb: 256,
  diskMb: 512,
  pidsMax: 64,
  network: "none" as const,
  env: {},
  metadata: {},
  timeoutMs: 1000,
  idleTimeoutMs: 1000,
  createdAt: 1,
  expiresAt: 1001,
});

describe("sqlite specifics", () => {
  it("keeps data across close and reopen, and applies each migration once", async () => {
    const file = await freshFile();
    const first = await openSqliteStore({ file });
    await first.users.create({ ...user("usr_1"), name: "keep", role: "admin" });
    await first.close();

    const second = await openSqliteStore({ file });
    expect((await second.users.getByName("keep"))?.role).toBe("admin");
    await second.close();

    const raw = new SqliteDatabase(file, { readonly: true });
    const migrations = raw.prepare("select name from kysely_migration order by name").all();
    raw.close();
    expect(migrations).toEqual([
      { name: "001-initial" },
      { name: "002-credentials" },
      { name: "003-runs" },
      { name: "004-user-proxy" },
      { name: "005-sessions" },
      { name: "006-egress-policy" },
      { name: "007-sandbox-names" },
      { name: "008-images" },
      { name: "009-postgres-parity" },
      { name: "010-identity" },
      { name: "011-plans" },
      { name: "012-job-runs" },
      { name: "013-run-changes" },
      { name: "014-run-keeps" },
      { name: "015-run-conversations" },
      { name: "016-webhooks-mcp" },
      { name: "017-nodes" },
      { name: "019-usage-rollups" },
      { name: "020-logins" },
    ]);
  });

  it("opens its connection with WAL, foreign keys, NORMAL sync and a busy timeout", async () => {
    const file = await freshFile();
    await (await openSqliteStore({ file })).close();
    const sqlite = openSqliteConnection(file);
    try {
      expect(sqlite.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(sqlite.pragma("foreign_keys", { simple: true })).toBe(1);
      expect(sqlite.pragma("synchronous", { simple: true })).toBe(1); // 1 = NORMAL
      expect(sqlite.pragma("busy_timeout", { simple: true })).toBeGreaterThan(0);
    } finally {
      sqlite.close();
    }
  });

  it("refuses rows whose user is missing and cascades a user's deletion to keys, sandboxes and logs", async () => {
    const file = await freshFile();
    await (await openSqliteStore({ file })).close();
    // The store's own connection settings, with the raw handle kept so the test can delete a user.
    const sqlite = openSqliteConnection(file);
    const store = createStore(sqliteKysely(sqlite));
    try {
      const key = { id: "key_1", userId: "usr_1", name: "k", keyHash: "h", prefix: "p", createdAt: 1 };
      await expect(store.apiKeys.create(key)).rejects.toMatchObject({ code: "SQLITE_CONSTRAINT_FOREIGNKEY" });
      await store.users.create(user("usr_1"));
      await store.apiKeys.create(key);
      await store.sandboxes.insert(sandbox("sbx_1", "usr_1"));
      await store.sandboxLogs.append("sbx_1", [{ at: 1, level: "info", source: "server", message: "m" }]);

      // The port has no user deletion (an admin feature to come); delete through the same connection.
      sqlite.prepare("delete from users where id = ?").run("usr_1");

      expect(await store.apiKeys.findByHash("h")).toBeUndefined();
      expect(await store.sandboxes.get("sbx_1")).toBeUndefined();
      expect(sqlite.prepare("select count(*) as n from sandbox_logs").get()).toEqual({ n: 0 });
    } finally {
      await store.close();
    }
  });

  it("lets exactly one of two connections win a transition from the same state", async () => {
    const file = await freshFile();
    const a = await openSqliteStore({ file });
    const b = await openSqliteStore({ file });
    try {
      await a.users.create(user("usr_1"));
      await a.sandboxes.insert(sandbox("sbx_1", "usr_1"));
      const results = await Promise.all([
        a.sandboxes.transition("sbx_1", ["creating"], "running", { at: 2 }),
        b.sandboxes.transition("sbx_1", ["creating"], "destroying", { at: 2 }),
      ]);
      const winners = results.filter((r) => r !== undefined);
      expect(winners).toHaveLength(1);
      expect((await b.sandboxes.get("sbx_1"))?.state).toBe(winners[0]?.state);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("does not open (or create) the file or its directory once its signal has aborted", async () => {
    const file = await freshFile();
    const controller = new AbortController();
    const reason = new Error("shutting down");
    controller.abort(reason);
    await expect(openSqliteStore({ file, signal: controller.signal })).rejects.toBe(reason);
    await expect(access(dirname(file))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
