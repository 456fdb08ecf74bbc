import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { Store } from "@polydev/core";
import SqliteDatabase from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { credentialRepository, gatewayTokenRepository, usageRepository } from "./credentials.js";
import { migrationProvider } from "./migrations/index.js";
import { runRepository } from "./runs.js";
import { sandboxLogRepository, sandboxRepository } from "./sandboxes.js";
import type { Database } from "./schema.js";
import { apiKeyRepository, userRepository } from "./users.js";

export interface SqliteStoreOptions {
  /** Path of the database file; created (with its directory) on first open. */
  file: string;
}

/**
 * The embedded default. WAL lets readers run while a write commits; NORMAL sync is durable
 * across process crashes (the WAL is fsynced at checkpoints), which is the failure we design for.
 */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  await mkdir(dirname(options.file), { recursive: true, mode: 0o700 });
  const sqlite = new SqliteDatabase(options.file);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("busy_timeout = 5000");
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrate(db);
  return createStore(db);
}

export async function migrate(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    throw new Error(`database migration ${failed?.migrationName ?? ""} failed: ${String(error)}`);
  }
}

export function createStore(db: Kysely<Database>): Store {
  return {
    users: userRepository(db),
    apiKeys: apiKeyRepository(db),
    sandboxes: sandboxRepository(db),
    sandboxLogs: sandboxLogRepository(db),
    credentials: credentialRepository(db),
    gatewayTokens: gatewayTokenRepository(db),
    usage: usageRepository(db),
    runs: runRepository(db),
    close: () => db.destroy(),
  };
}
