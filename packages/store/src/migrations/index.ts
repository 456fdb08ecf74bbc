import type { Migration, MigrationProvider } from "kysely";
import * as initial from "./001-initial.js";
import * as credentials from "./002-credentials.js";
import * as runs from "./003-runs.js";
import * as userProxy from "./004-user-proxy.js";
import * as sessions from "./005-sessions.js";
import * as egressPolicy from "./006-egress-policy.js";
import * as sandboxNames from "./007-sandbox-names.js";
import * as images from "./008-images.js";
import * as postgresParity from "./009-postgres-parity.js";
import * as identity from "./010-identity.js";
import * as plans from "./011-plans.js";
import * as jobRuns from "./012-job-runs.js";
import * as runChanges from "./013-run-changes.js";
import * as runKeeps from "./014-run-keeps.js";
import * as runConversations from "./015-run-conversations.js";
import * as webhooksMcp from "./016-webhooks-mcp.js";
import * as nodes from "./017-nodes.js";
import * as usageRollups from "./019-usage-rollups.js";
import * as logins from "./020-logins.js";
import type { SqlFamily } from "./sql-family.js";

export type { SqlFamily } from "./sql-family.js";

interface MigrationModule {
  up(db: Parameters<Migration["up"]>[0], family: SqlFamily): Promise<void>;
  down(db: Parameters<Migration["up"]>[0]): Promise<void>;
}

/** Never edit or rename an applied migration: its name is what the database remembers. */
const MIGRATIONS: Record<string, MigrationModule> = {
  "001-initial": initial,
  "002-credentials": credentials,
  "003-runs": runs,
  "004-user-proxy": userProxy,
  "005-sessions": sessions,
  "006-egress-policy": egressPolicy,
  "007-sandbox-names": sandboxNames,
  "008-images": images,
  "009-postgres-parity": postgresParity,
  "010-identity": identity,
  "011-plans": plans,
  "012-job-runs": jobRuns,
  "013-run-changes": runChanges,
  "014-run-keeps": runKeeps,
  "015-run-conversations": runConversations,
  "016-webhooks-mcp": webhooksMcp,
  "017-nodes": nodes,
  "019-usage-rollups": usageRollups,
  "020-logins": logins,
};

/** Migrations live in code (not read from a folder) so a bundled build carries them. */
export function migrationProvider(family: SqlFamily): MigrationProvider {
  return {
    async getMigrations(): Promise<Record<string, Migration>> {
      return Object.fromEntries(
        Object.entries(MIGRATIONS).map(([name, m]) => [
          name,
          { up: (db) => m.up(db, family), down: (db) => m.down(db) },
        ]),
      );
    },
  };
}
