import type { Migration, MigrationProvider } from "kysely";
import * as initial from "./001-initial.js";
import * as credentials from "./002-credentials.js";
import * as runs from "./003-runs.js";
import * as userProxy from "./004-user-proxy.js";

/** Migrations live in code (not read from a folder) so a bundled build carries them. */
export const migrationProvider: MigrationProvider = {
  async getMigrations(): Promise<Record<string, Migration>> {
    return {
      "001-initial": initial,
      "002-credentials": credentials,
      "003-runs": runs,
      "004-user-proxy": userProxy,
    };
  },
};
