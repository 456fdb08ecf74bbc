import type { Store } from "@polydev/core";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Database } from "./schema.js";
import { createStore, migrate } from "./store.js";
import { withConflictErrors } from "./unique-violations.js";

export interface PostgresStoreOptions {
  /**
   * `postgres://user:password@host:port/database?sslmode=…` (any Postgres, Supabase included).
   * TLS follows the URL's `sslmode` as node-postgres reads it: `disable`, `no-verify`, and
   * `require`/`verify-full` (both verify the certificate; add `uselibpqcompat=true` for libpq's
   * weaker `require`); `sslrootcert=<file>` names a CA. A unix socket: `?host=/run/postgresql`.
   */
  url: string;
  /** Connections in the pool at most (default 10): requests beyond it wait for a free one. */
  maxConnections?: number | undefined;
  /** The server cancels a statement running longer than this (default 30 000 ms). */
  statementTimeoutMs?: number | undefined;
  /** Opening one connection fails after this (default 10 000 ms). */
  connectTimeoutMs?: number | undefined;
  /**
   * Called when an idle pooled connection fails (the server restarted, the network dropped).
   * The pool has already discarded it and the next query opens a new one; without a listener
   * node-postgres would throw the error out of the process.
   */
  onIdleError?: ((error: Error) => void) | undefined;
  /** Aborts the open; a store already opened by then is closed again. */
  signal?: AbortSignal | undefined;
}

export const POSTGRES_DEFAULTS = Object.freeze({
  maxConnections: 10,
  statementTimeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  /** A transaction left open by a stuck caller would hold its locks; the server ends it. */
  idleInTransactionTimeoutMs: 60_000,
  idleConnectionMs: 30_000,
});

/** A bounded pool; the timeouts are session settings sent at connect, so each connection has them. */
export function postgresPool(options: PostgresStoreOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? POSTGRES_DEFAULTS.maxConnections,
    connectionTimeoutMillis: options.connectTimeoutMs ?? POSTGRES_DEFAULTS.connectTimeoutMs,
    idleTimeoutMillis: POSTGRES_DEFAULTS.idleConnectionMs,
    statement_timeout: options.statementTimeoutMs ?? POSTGRES_DEFAULTS.statementTimeoutMs,
    idle_in_transaction_session_timeout: POSTGRES_DEFAULTS.idleInTransactionTimeoutMs,
    application_name: "polydev",
  });
  const onIdleError = options.onIdleError;
  pool.on("error", (error) => onIdleError?.(error));
  return pool;
}

export function postgresKysely(pool: pg.Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: withConflictErrors(new PostgresDialect({ pool })) });
}

/**
 * The scale-out store: migrated to the latest schema before it is returned. Kysely's migrator
 * takes an advisory lock, so replicas starting together migrate once.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  options.signal?.throwIfAborted();
  const db = postgresKysely(postgresPool(options));
  try {
    await migrate(db, "postgres");
    options.signal?.throwIfAborted();
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return createStore(db);
}
