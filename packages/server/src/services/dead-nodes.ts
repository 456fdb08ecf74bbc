/**
 * A node that stopped answering (its registration not refreshed for `nodeLeaseMs`: killed,
 * partitioned, its host gone) cannot be asked about its sandboxes, so a survivor marks them
 * `failed` with the reason, fails their queued and running runs and its unfinished logins, and
 * drops the node's record. It
 * runs as a cluster-wide job every `nodeRefreshIntervalMs` under a job lease of twice that (the
 * dead node may have held it), so a dead node's sandboxes are marked within
 * `nodeLeaseMs + 3 × nodeRefreshIntervalMs` (30 s by default) of its last refresh, plus the pass.
 *
 * A node that was only slow and comes back finds its sandboxes failed: its own reconciler then
 * destroys them as orphans. Failing them is the honest answer while nobody could reach them.
 * Batch work: one sandbox's failure is reported and never stops the rest.
 */
import type { Clock, SandboxState, Store } from "@polydev/core";
import type { Logger } from "pino";
import { UNFINISHED_LOGIN_STATES } from "./login-service.js";
import type { RunService } from "./run-service.js";

const LIVE_STATES: SandboxState[] = ["creating", "running", "hibernated", "stopped", "destroying"];

export interface DeadNodeReport {
  node: string;
  failedSandboxes: string[];
  failedRuns: number;
  failedLogins: number;
  errors: string[];
}

export async function failDeadNodes(deps: {
  store: Store;
  clock: Clock;
  /** This node: never declared dead by itself. */
  self: string;
  runs: RunService;
  log: Logger;
}): Promise<DeadNodeReport[]> {
  const { store, clock, log } = deps;
  const now = clock.now();
  const dead = (await store.nodes.list()).filter((node) => node.expiresAt <= now && node.name !== deps.self);
  if (dead.length === 0) return [];
  const live = await store.sandboxes.listByStates(LIVE_STATES);
  const reports: DeadNodeReport[] = [];
  for (const node of dead) {
    const reason = `node ${node.name} stopped answering`;
    const report: DeadNodeReport = {
      node: node.name,
      failedSandboxes: [],
      failedRuns: 0,
      failedLogins: 0,
      errors: [],
    };
    for (const row of live.filter((r) => r.node === node.name)) {
      try {
        const failed = await store.sandboxes.transition(row.id, LIVE_STATES, "failed", {
          at: clock.now(),
          failureReason: reason,
        });
        if (!failed) continue;
        await store.sandboxLogs.append(row.id, [
          { at: clock.now(), level: "error", source: "server", message: `failed: ${reason}` },
        ]);
        report.failedSandboxes.push(row.id);
      } catch (error) {
        report.errors.push(`${row.id}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    report.failedRuns = await deps.runs.failRunsIn(new Set(report.failedSandboxes), reason);
    for (const login of await store.logins.listForNode(node.name, UNFINISHED_LOGIN_STATES)) {
      await store.logins.put({ ...login, state: "failed", reason, updatedAt: clock.now() });
      report.failedLogins += 1;
    }
    // Only if it did not come back meanwhile: a returning node keeps its fresh record.
    await store.nodes.removeIfExpired(node.name, now);
    log.warn(report, "a node stopped answering; its sandboxes were marked failed");
    reports.push(report);
  }
  return reports;
}
