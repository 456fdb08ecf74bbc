/**
 * What a store change means to metrics and to the event stream: create latency from a row's
 * insert to its first state, a run's duration once it is final, gateway usage, and one event per
 * sandbox state change and finished run.
 */
import type { RunRecord, SandboxRecord } from "@polydev/core";
import { FINAL_RUN_STATES } from "@polydev/core";
import type { EventHub } from "./event-hub.js";
import type { Metrics } from "./metrics.js";
import type { StoreObserver } from "./observed-store.js";
import type { WebhookService } from "./webhooks.js";

export function reportStoreChanges(
  metrics: Metrics,
  events: EventHub,
  webhooks?: Pick<WebhookService, "runEnded">,
): StoreObserver {
  // Creates this server wrote, until their first state change: bounded by creates in flight.
  const creating = new Set<string>();
  return {
    sandboxChanged(sandbox: SandboxRecord, previous) {
      if (previous === undefined && sandbox.state === "creating") creating.add(sandbox.id);
      else if (creating.delete(sandbox.id) && (sandbox.state === "running" || sandbox.state === "failed"))
        metrics.createFinished(sandbox.driver, sandbox.state, sandbox.stateChangedAt - sandbox.createdAt);
      events.publish(sandbox.userId, "sandbox.state", {
        sandboxId: sandbox.id,
        name: sandbox.name,
        state: sandbox.state,
        previous: previous ?? null,
        reason: sandbox.state === "failed" ? sandbox.failureReason : null,
      });
    },
    runChanged(run: RunRecord) {
      // The final state is written first with the usage, then once more by `finish` with the
      // end time and reason: that second write is the run being finished.
      if (!(FINAL_RUN_STATES as readonly string[]).includes(run.state) || run.endedAt === null) return;
      metrics.runFinished({
        agent: run.agent,
        state: run.state,
        durationMs: run.endedAt - (run.startedAt ?? run.createdAt),
      });
      events.publish(run.userId, "run.finished", {
        runId: run.id,
        sandboxId: run.sandboxId,
        agent: run.agent,
        state: run.state,
        exitReason: run.exitReason,
      });
      webhooks?.runEnded(run);
    },
    usageRecorded(entry) {
      metrics.gatewayUsage(entry);
    },
  };
}
