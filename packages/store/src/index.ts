export type { SqlFamily } from "./migrations/index.js";
export type { PostgresStoreOptions } from "./postgres.js";
export { openPostgresStore, POSTGRES_DEFAULTS } from "./postgres.js";
export type { Database } from "./schema.js";
export type { SqliteStoreOptions } from "./sqlite.js";
export { openSqliteStore } from "./sqlite.js";
export { createStore, migrate } from "./store.js";
export { toConflictError, withConflictErrors } from "./unique-violations.js";
