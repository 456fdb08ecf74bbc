/** Dialect-neutral assembly: a SQLite or Postgres store differs only in how its Kysely is made. */
import type { Store, StoreRepositories } from "@polydev/core";
import { type Kysely, Migrator } from "kysely";
import { credentialRepository, gatewayTokenRepository } from "./credentials.js";
import { egressAuditRepository, egressPresetRepository } from "./egress.js";
import { auditRepository, userIdentityRepository } from "./identity.js";
import { imageRepository } from "./images.js";
import { jobRunRepository } from "./job-runs.js";
import { loginRepository } from "./logins.js";
import { mcpServerRepository } from "./mcp-servers.js";
import { migrationProvider, type SqlFamily } from "./migrations/index.js";
import { nodeRepository } from "./nodes.js";
import { planRepository } from "./plans.js";
import { runRepository } from "./runs.js";
import { sandboxLogRepository, sandboxRepository } from "./sandboxes.js";
import type { Database } from "./schema.js";
import { sessionRepository } from "./sessions.js";
import { usageRepository } from "./usage.js";
import { apiKeyRepository, userRepository } from "./users.js";
import { webhookRepository } from "./webhooks.js";

/** Applies every pending migration; already applied ones are skipped, so this runs at each open. */
export async function migrate(db: Kysely<Database>, family: SqlFamily): Promise<void> {
  // Unordered: helpers add migrations in parallel (010 may land after 011 was applied); each
  // one is written to stand alone, so applying a lower number later is safe.
  const migrator = new Migrator({ db, provider: migrationProvider(family), allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error !== undefined || failed) {
    throw new Error(`database migration ${failed?.migrationName ?? ""} failed: ${String(error)}`, {
      cause: error,
    });
  }
}

/** A Kysely instance and a Transaction build repositories the same way. */
function repositories(db: Kysely<Database>): StoreRepositories {
  return {
    users: userRepository(db),
    apiKeys: apiKeyRepository(db),
    sessions: sessionRepository(db),
    sandboxes: sandboxRepository(db),
    sandboxLogs: sandboxLogRepository(db),
    credentials: credentialRepository(db),
    gatewayTokens: gatewayTokenRepository(db),
    usage: usageRepository(db),
    runs: runRepository(db),
    egressPresets: egressPresetRepository(db),
    egressAudit: egressAuditRepository(db),
    images: imageRepository(db),
    identities: userIdentityRepository(db),
    audit: auditRepository(db),
    plans: planRepository(db),
    jobRuns: jobRunRepository(db),
    webhooks: webhookRepository(db),
    mcpServers: mcpServerRepository(db),
    nodes: nodeRepository(db),
    logins: loginRepository(db),
  };
}

/** `db` must already be migrated; closing the store destroys it. */
export function createStore(db: Kysely<Database>): Store {
  return {
    ...repositories(db),
    transaction: (fn) => db.transaction().execute((trx) => fn(repositories(trx))),
    close: () => db.destroy(),
  };
}
