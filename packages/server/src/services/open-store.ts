import { join } from "node:path";
import type { Store } from "@polydev/core";
import { openPostgresStore, openSqliteStore } from "@polydev/store";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";

/** The file of the embedded default, in the data directory. */
export const SQLITE_FILE = "polydev.db";

/** Postgres when `databaseUrl` is set, else the SQLite file in the data directory. */
export function openConfiguredStore(
  config: Pick<PolydevConfig, "databaseUrl" | "dataDir">,
  log: Logger,
): Promise<Store> {
  if (config.databaseUrl === undefined) return openSqliteStore({ file: join(config.dataDir, SQLITE_FILE) });
  return openPostgresStore({
    url: config.databaseUrl,
    // The pool has dropped the connection and reconnects on the next query: worth a line, not a crash.
    onIdleError: (error) => log.warn({ err: error }, "an idle database connection failed"),
  });
}
