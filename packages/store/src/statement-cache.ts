/**
 * Kysely's SQLite driver prepares every query's statement anew, and preparing (parsing and
 * planning the SQL) was the largest single cost of a simple API read: a sixth of the server's
 * CPU for `GET /v1/sandboxes`. Kysely's queries are a bounded set of SQL texts with their values
 * as parameters, so each text's statement is kept and reused. better-sqlite3 cannot run a
 * statement again while it is still being iterated (a streamed query), so a busy one is never
 * handed out: that caller gets a fresh statement instead. Least recently used texts go first
 * once `limit` are kept (a query built with a variable number of `in (…)` values makes new texts).
 */
import type SqliteDatabase from "better-sqlite3";
import type { SqliteDatabase as KyselySqliteDatabase } from "kysely";

export function withStatementCache(sqlite: SqliteDatabase.Database, limit = 512): KyselySqliteDatabase {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => {
      statements.clear();
      sqlite.close();
    },
    prepare(sql) {
      const kept = statements.get(sql);
      if (kept !== undefined && !kept.busy) {
        // Re-inserted: a Map iterates in insertion order, so its first key is the least recent.
        statements.delete(sql);
        statements.set(sql, kept);
        return kept;
      }
      const statement = sqlite.prepare(sql);
      if (kept === undefined) {
        statements.set(sql, statement);
        if (statements.size > limit) {
          const oldest = statements.keys().next().value;
          if (oldest !== undefined) statements.delete(oldest);
        }
      }
      return statement;
    },
  };
}
