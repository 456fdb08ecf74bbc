import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { Store } from "@polydev/core";
import SqliteDatabase from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import type { Database } from "./schema.js";
import { withStatementCache } from "./statement-cache.js";
import { createStore, migrate } from "./store.js";
import { withConflictErrors } from "./unique-violations.js";

export interface SqliteStoreOptions {
  /** Path of the database file; it and its directory (mode 0700) are created on first open. */
  file: string;
  /** Aborts the open; a store already opened by then is closed again. */
  signal?: AbortSignal | undefined;
}

/** How long a write waits for another process's lock (e.g. the CLI beside the server) before failing. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * One connection with the settings every open needs. WAL lets readers run while a write commits;
 * NORMAL sync is durable across process crashes (only a power loss may drop the last commits),
 * which is the failure we design for. Foreign keys are a per-connection setting whose default is
 * a compile-time option (better-sqlite3 happens to build with it on), so it is set explicitly.
 */
export function openSqliteConnection(file: string): SqliteDatabase.Database {
  const sqlite = new SqliteDatabase(file);
  try {
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = NORMAL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  } catch (error) {
    sqlite.close();
    throw error;
  }
  return sqlite;
}

export function sqliteKysely(sqlite: SqliteDatabase.Database): Kysely<Database> {
  return new Kysely<Database>({
    dialect: withConflictErrors(new SqliteDialect({ database: withStatementCache(sqlite) })),
  });
}

/** The embedded default: a SQLite file, migrated to the latest schema before it is returned. */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  options.signal?.throwIfAborted();
  await mkdir(dirname(options.file), { recursive: true, mode: 0o700 });
  options.signal?.throwIfAborted();
  const db = sqliteKysely(openSqliteConnection(options.file));
  try {
    await migrate(db, "sqlite");
    options.signal?.throwIfAborted();
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return createStore(db);
}
