/**
 * The one place unique-constraint violations become `PolydevError("conflict")`. It wraps the
 * dialect's driver, so every statement (repositories, transactions, future tables) is covered
 * without a catch at each call site, and SQLite and Postgres errors read the same.
 */
import { PolydevError } from "@polydev/core";
import type { DatabaseConnection, Dialect, Driver, QueryResult } from "kysely";

/** Table names as a user would say them; unknown tables fall back to their name. */
const NOUNS: Record<string, string> = {
  users: "a user",
  api_keys: "an API key",
  sessions: "a session",
  sandboxes: "a sandbox",
  sandbox_logs: "a sandbox log entry",
  credentials: "a credential",
  gateway_tokens: "a gateway token",
  runs: "a run",
  run_events: "a run event",
  images: "an image",
  image_layers: "an image layer",
  mcp_servers: "an MCP server",
  webhook_deliveries: "a webhook delivery",
};

interface Violation {
  table: string;
  columns: string[];
}

/** better-sqlite3: code SQLITE_CONSTRAINT_UNIQUE|PRIMARYKEY, "UNIQUE constraint failed: t.a, t.b". */
function sqliteViolation(code: unknown, message: string): Violation | undefined {
  if (code !== "SQLITE_CONSTRAINT_UNIQUE" && code !== "SQLITE_CONSTRAINT_PRIMARYKEY") return undefined;
  const list = /constraint failed: (.+)$/.exec(message)?.[1];
  if (!list) return { table: "", columns: [] };
  const qualified = list.split(",").map((c) => c.trim());
  return {
    table: qualified[0]?.split(".")[0] ?? "",
    columns: qualified.map((c) => c.slice(c.indexOf(".") + 1)),
  };
}

/** node-postgres: code 23505, `table`, and detail "Key (a, b)=(x, y) already exists.". */
function postgresViolation(error: object): Violation | undefined {
  if (!("code" in error) || error.code !== "23505") return undefined;
  const table = "table" in error && typeof error.table === "string" ? error.table : "";
  const detail = "detail" in error && typeof error.detail === "string" ? error.detail : "";
  const list = /^Key \(([^)]+)\)=/.exec(detail)?.[1];
  return { table, columns: list ? list.split(",").map((c) => c.trim().replace(/^"|"$/g, "")) : [] };
}

const camel = (column: string): string => column.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Returns the conflict error for a unique violation, or the error itself unchanged. */
export function toConflictError(error: unknown): unknown {
  if (typeof error !== "object" || error === null) return error;
  const message = error instanceof Error ? error.message : "";
  const code = "code" in error ? error.code : undefined;
  const violation = sqliteViolation(code, message) ?? postgresViolation(error);
  if (!violation) return error;
  const what = NOUNS[violation.table] ?? (violation.table ? `a row in ${violation.table}` : "a row");
  const fields = violation.columns.map(camel);
  const words = violation.columns.map((c) => c.replaceAll("_", " ")).join(" and ");
  return new PolydevError("conflict", `${what} with this ${words || "key"} already exists`, {
    details: { fields },
    cause: error,
  });
}

function mapConnection(connection: DatabaseConnection): DatabaseConnection {
  return {
    // `await` inside the try: some drivers (better-sqlite3's) throw synchronously, others reject.
    async executeQuery<R>(...args: Parameters<DatabaseConnection["executeQuery"]>): Promise<QueryResult<R>> {
      try {
        return await connection.executeQuery<R>(...args);
      } catch (error) {
        throw toConflictError(error);
      }
    },
    async *streamQuery<R>(
      ...args: Parameters<DatabaseConnection["streamQuery"]>
    ): AsyncIterableIterator<QueryResult<R>> {
      try {
        yield* connection.streamQuery<R>(...args);
      } catch (error) {
        throw toConflictError(error);
      }
    },
  };
}

/**
 * Drivers keep private state on their own connection objects (node-postgres releases through
 * one), so the wrapper hands every call the original connection back.
 */
function mapDriver(driver: Driver): Driver {
  const originals = new WeakMap<DatabaseConnection, DatabaseConnection>();
  const original = (wrapped: DatabaseConnection): DatabaseConnection => originals.get(wrapped) ?? wrapped;
  const mapped: Driver = {
    init: () => driver.init(),
    async acquireConnection() {
      const connection = await driver.acquireConnection();
      const wrapped = mapConnection(connection);
      originals.set(wrapped, connection);
      return wrapped;
    },
    beginTransaction: (c, settings) => driver.beginTransaction(original(c), settings),
    commitTransaction: (c) => driver.commitTransaction(original(c)),
    rollbackTransaction: (c) => driver.rollbackTransaction(original(c)),
    releaseConnection: (c) => driver.releaseConnection(original(c)),
    destroy: () => driver.destroy(),
  };
  // Optional in the Driver interface: Kysely checks for their presence, so copy only what exists.
  const { savepoint, rollbackToSavepoint, releaseSavepoint } = driver;
  if (savepoint) mapped.savepoint = (c, name, compile) => savepoint.call(driver, original(c), name, compile);
  if (rollbackToSavepoint) {
    mapped.rollbackToSavepoint = (c, name, compile) =>
      rollbackToSavepoint.call(driver, original(c), name, compile);
  }
  if (releaseSavepoint) {
    mapped.releaseSavepoint = (c, name, compile) => releaseSavepoint.call(driver, original(c), name, compile);
  }
  return mapped;
}

/** Any Kysely dialect, with unique violations mapped to conflicts. */
export function withConflictErrors(dialect: Dialect): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createDriver: () => mapDriver(dialect.createDriver()),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
  };
}
