/**
 * Makes the host match the database, which is the source of truth: at start-up (after a crash
 * or SIGKILL) and then periodically. Live rows whose sandbox vanished are marked failed, live
 * sandboxes are re-adopted (at start-up frozen or thawed to match their row, finishing a
 * hibernate or resume that a crash interrupted), interrupted transitions are finished, expired
 * and idle sandboxes are destroyed, and sandboxes on the host with no live row (orphans) are
 * destroyed.
 * Batch work: one item's failure is reported and never stops the rest.
 */
import type { Clock, SandboxDriver, SandboxRecord, Store } from "@polydev/core";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";
import type { SandboxService } from "./sandbox-service.js";

export type ReconcileAction =
  | "readopted"
  | "failed_vanished"
  | "failed_interrupted"
  | "finished_destroy"
  | "destroyed_expired"
  | "destroyed_idle"
  | "destroyed_orphan";

export interface ReconcileItem {
  sandboxId: string;
  action: ReconcileAction;
  error?: string;
}

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ReconcileItem[]> | undefined;

  constructor(
    private readonly config: PolydevConfig,
    private readonly store: Store,
    private readonly driver: SandboxDriver,
    private readonly sandboxes: SandboxService,
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {}

  /** One pass; concurrent callers share the pass in progress. */
  reconcile(options: { startup?: boolean } = {}): Promise<ReconcileItem[]> {
    if (!this.running) {
      this.running = this.pass(options.startup ?? false).finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.reconcile().catch((error: unknown) => this.log.error({ err: error }, "reconcile pass failed"));
    }, this.config.reconcileIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private async pass(startup: boolean): Promise<ReconcileItem[]> {
    const items: ReconcileItem[] = [];
    const rows = await this.store.sandboxes.listByStates(["creating", "running", "hibernated", "destroying"]);
    for (const row of rows) {
      const item = await this.reconcileRow(row, startup).catch(
        (error: unknown): ReconcileItem => ({
          sandboxId: row.id,
          action: "failed_vanished",
          error: error instanceof Error ? error.message : String(error),
        }),
      );
      if (item) items.push(item);
    }
    const liveIds = new Set(
      (await this.store.sandboxes.listByStates(["creating", "running", "hibernated"])).map((row) => row.id),
    );
    for (const observed of await this.driver.list()) {
      if (liveIds.has(observed.sandboxId)) continue;
      try {
        await this.driver.destroy(observed.handle);
        items.push({ sandboxId: observed.sandboxId, action: "destroyed_orphan" });
      } catch (error) {
        items.push({ sandboxId: observed.sandboxId, action: "destroyed_orphan", error: String(error) });
      }
    }
    for (const item of items) {
      if (item.error) this.log.warn(item, "reconcile item failed");
      else if (item.action !== "readopted" || startup) this.log.info(item, "reconciled sandbox");
    }
    return items;
  }

  private async reconcileRow(row: SandboxRecord, startup: boolean): Promise<ReconcileItem | undefined> {
    const now = this.clock.now();
    const stuck = now - row.stateChangedAt > this.config.transitionTimeoutMs;
    if (row.state === "destroying") {
      if (!startup && !stuck) return undefined;
      await this.destroy(row, "finishing an interrupted destroy");
      return { sandboxId: row.id, action: "finished_destroy" };
    }
    if (row.state === "creating") {
      // Creation runs inside one request: at start-up every creating row was interrupted.
      if (!startup && !stuck) return undefined;
      await this.sandboxes.markFailed(
        row.id,
        ["creating"],
        "creation was interrupted (server restart or timeout)",
      );
      return { sandboxId: row.id, action: "failed_interrupted" };
    }
    const alive = row.handle ? await this.driver.isAlive(row.handle) : false;
    if (!alive) {
      await this.sandboxes.markFailed(row.id, ["running", "hibernated"], "the sandbox's processes are gone");
      return { sandboxId: row.id, action: "failed_vanished" };
    }
    if (row.expiresAt <= now) {
      await this.destroy(row, `its timeout of ${row.timeoutMs} ms was reached`);
      return { sandboxId: row.id, action: "destroyed_expired" };
    }
    if (row.state === "running" && row.lastActivityAt + row.idleTimeoutMs <= now) {
      await this.destroy(row, `idle for ${row.idleTimeoutMs} ms`);
      return { sandboxId: row.id, action: "destroyed_idle" };
    }
    if (!startup) return undefined;
    // A crash between writing a hibernate or resume and acting on it left the sandbox frozen or
    // thawed against its row: the row is the truth, the act is finished now.
    try {
      await this.sandboxes.settleFrozenState(row);
    } catch (error) {
      const act = row.state === "hibernated" ? "frozen" : "thawed";
      const reason = `it could not be ${act} to match its state after a restart: ${error instanceof Error ? error.message : String(error)}`;
      await this.sandboxes.markFailed(row.id, [row.state], reason, error);
      return { sandboxId: row.id, action: "failed_interrupted", error: reason };
    }
    return { sandboxId: row.id, action: "readopted" };
  }

  private async destroy(row: SandboxRecord, reason: string): Promise<void> {
    await this.sandboxes.destroyRecord(row, reason);
  }
}
