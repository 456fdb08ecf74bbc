/**
 * The server's periodic work, as background jobs (see jobs.ts). Reconcile is per node: it
 * compares the database with this host's driver (TTL, idle stop, inactivity destroy, vanished
 * and orphaned sandboxes are all its passes). The rest is cluster-wide: it touches only shared
 * rows, so one replica doing it per interval is enough. The usage roll-up keeps the per-request
 * usage table to its retention window (see UsageRepository.rollUp). Stale logins is per node too:
 * only the node a login ran on can tell that its process no longer holds it.
 */
import type { Bus, Clock, Store } from "@polydev/core";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";
import type { AuditLog } from "./audit-log.js";
import type { CredentialService } from "./credential-service.js";
import { JobRunner } from "./jobs.js";
import type { Reconciler } from "./reconciler.js";
import type { WebhookService } from "./webhooks.js";

const HOUR_MS = 60 * 60 * 1000;

export function periodicJobs(deps: {
  config: PolydevConfig;
  store: Store;
  bus: Bus;
  clock: Clock;
  log: Logger;
  reconciler: Reconciler;
  audit: AuditLog;
  credentials: CredentialService;
  sessionIdleTimeoutMs: number;
  webhooks: WebhookService;
  /** Ends this node's logins that a restart lost (see LoginService.endStale). */
  logins: { endStale(): Promise<number> };
  /** With replicas: marks the sandboxes of nodes that stopped answering (see dead-nodes.ts). */
  deadNodes?: (() => Promise<void>) | undefined;
}): JobRunner {
  const { config, store, clock, log } = deps;
  const jobs = new JobRunner({ store, bus: deps.bus, clock, node: config.nodeName, log });
  jobs.add({
    name: "reconcile",
    scope: "node",
    intervalMs: config.reconcileIntervalMs,
    async run() {
      const failed = (await deps.reconciler.reconcile()).filter((item) => item.error !== undefined);
      // One item's failure is the item's (logged by the reconciler); the pass still succeeded.
      if (failed.length > 0) log.warn({ failed: failed.length }, "reconcile finished with failed items");
    },
  });
  jobs.add({
    name: STALE_LOGINS_JOB,
    scope: "node",
    intervalMs: 5 * 60 * 1000,
    async run() {
      const ended = await deps.logins.endStale();
      if (ended > 0) log.warn({ ended }, "ended logins that a server restart lost");
    },
  });
  jobs.add({
    name: "audit-prune",
    scope: "cluster",
    intervalMs: HOUR_MS,
    async run() {
      await deps.audit.prune();
    },
  });
  jobs.add({
    name: "expired-sessions",
    scope: "cluster",
    intervalMs: HOUR_MS,
    async run() {
      const now = clock.now();
      await store.sessions.deleteExpired(now, now - deps.sessionIdleTimeoutMs);
    },
  });
  jobs.add({
    name: "credential-validation",
    scope: "cluster",
    intervalMs: config.credentialValidationIntervalMs,
    async run(signal) {
      const results = await deps.credentials.validateAll(signal);
      const unreachable = results.filter((r) => r.error !== undefined);
      if (unreachable.length > 0)
        log.warn({ unreachable: unreachable.length }, "some credentials could not be validated this time");
    },
  });
  jobs.add({
    name: "usage-rollup",
    scope: "cluster",
    intervalMs: HOUR_MS,
    async run() {
      const folded = await store.usage.rollUp(clock.now() - config.usageRawRetentionMs);
      if (folded > 0) log.info({ folded }, "folded gateway usage rows into hourly sums");
    },
  });
  jobs.add({
    name: WEBHOOK_JOB,
    scope: "cluster",
    intervalMs: config.webhooks.pollIntervalMs,
    async run(signal) {
      await deps.webhooks.deliverDue(signal);
    },
  });
  // A delivery just queued goes out now rather than at the next interval (still under the lease).
  deps.webhooks.onQueued(() => {
    void jobs.runNow(WEBHOOK_JOB, { force: true });
  });
  const deadNodes = deps.deadNodes;
  if (deadNodes) {
    jobs.add({
      name: "dead-nodes",
      scope: "cluster",
      intervalMs: config.nodeRefreshIntervalMs,
      // Short: a replica that dies holding it delays the job by at most this (see dead-nodes.ts).
      leaseTtlMs: 2 * config.nodeRefreshIntervalMs,
      run: () => deadNodes(),
    });
  }
  return jobs;
}

export const WEBHOOK_JOB = "webhook-deliveries";
export const STALE_LOGINS_JOB = "stale-logins";
