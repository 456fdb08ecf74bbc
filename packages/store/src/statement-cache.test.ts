import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { withStatementCache } from "./statement-cache.js";

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function database(): Promise<SqliteDatabase.Database> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-statements-"));
  dirs.push(dir);
  const sqlite = new SqliteDatabase(join(dir, "db.sqlite"));
  sqlite.exec("create table t (n integer)");
  for (let n = 0; n < 5; n++) sqlite.prepare("insert into t values (?)").run(n);
  return sqlite;
}

describe("the SQLite statement cache", () => {
  it("hands out one statement per SQL text, and a fresh one while it is being iterated", async () => {
    const sqlite = await database();
    const cached = withStatementCache(sqlite);
    const sql = "select n from t order by n";
    const first = cached.prepare(sql);
    expect(cached.prepare(sql)).toBe(first);
    // A streamed read in progress: running the same text again must not touch that statement.
    const rows = first.iterate([]);
    expect(rows.next().value).toEqual({ n: 0 });
    const second = cached.prepare(sql);
    expect(second).not.toBe(first);
    expect(second.all([])).toHaveLength(5);
    expect(rows.next().value).toEqual({ n: 1 });
    rows.return?.();
    expect(cached.prepare(sql)).toBe(first);
    cached.close();
  });

  it("keeps at most its limit, dropping the least recently used text", async () => {
    const sqlite = await database();
    const cached = withStatementCache(sqlite, 2);
    const a = cached.prepare("select 1");
    const b = cached.prepare("select 2");
    expect(cached.prepare("select 1")).toBe(a);
    cached.prepare("select 3");
    // "select 2" was the least recent when the third came: it alone was dropped.
    expect(cached.prepare("select 1")).toBe(a);
    expect(cached.prepare("select 2")).not.toBe(b);
    cached.close();
    expect(sqlite.open).toBe(false);
  });
});
