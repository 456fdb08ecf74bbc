export type { Database } from "./schema.js";
export type { SqliteStoreOptions } from "./sqlite.js";
export { createStore, migrate, openSqliteStore } from "./sqlite.js";
