/**
 * Makes the host match the database, which is the source of truth: at start-up (after a crash
 * or SIGKILL) and then periodically. Live rows whose sandbox vanished are marked failed (with a
 * durable driver whose disk is still there: stopped, as after a host reboot), live sandboxes are
 * re-adopted (at start-up frozen or thawed to match their row, finishing a hibernate or resume
 * that a crash interrupted), interrupted transitions are finished, expired sandboxes are
 * destroyed, idle ones stopped (durable drivers) or destroyed, sandboxes stopped for longer than
 * the inactivity period destroyed, and sandboxes on the host with no row that holds them
 * (orphans) are destroyed. Stopped sandboxes have no processes, and that is normal for them.
 * Batch work: one item's failure is reported and never stops the rest.
 *
 * With replicas, each node reconciles only the rows it hosts (`owns`): another node's sandboxes
 * are not on this host, and it is not this node's to fail them (a dead node's are failed by the
 * dead-nodes job).
 */
import type { Clock, ObservedSandbox, SandboxDriver, SandboxRecord, Store } from "@polydev/core";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";
import type { SandboxService } from "./sandbox-service.js";

const DAY_MS = 24 * 60 * 60 * 1000;

export type ReconcileAction =
  | "readopted"
  | "failed_vanished"
  | "failed_interrupted"
  | "finished_destroy"
  | "destroyed_expired"
  | "destroyed_idle"
  | "destroyed_orphan"
  | "stopped_idle"
  | "stopped_vanished"
  | "finished_stop"
  | "destroyed_inactive";

export interface ReconcileItem {
  sandboxId: string;
  action: ReconcileAction;
  error?: string;
}

export class Reconciler {
  private running: Promise<ReconcileItem[]> | undefined;

  constructor(
    private readonly config: PolydevConfig,
    private readonly store: Store,
    private readonly driver: SandboxDriver,
    private readonly sandboxes: SandboxService,
    private readonly log: Logger,
    private readonly clock: Clock,
    /** Whether a row is this node's to reconcile (default: every row, as on a single server). */
    private readonly owns: (row: SandboxRecord) => boolean = () => true,
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

  /** Waits for a pass in progress (the periodic passes are the `reconcile` job's, see jobs.ts). */
  async stop(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  private async pass(startup: boolean): Promise<ReconcileItem[]> {
    const items: ReconcileItem[] = [];
    // What is on the host, read once: a durable sandbox whose processes died still has its disk
    // here, and is then stopped rather than failed.
    const observed = this.sandboxes.anyDurable() ? await this.driver.list() : [];
    const onHost = new Map(observed.map((o) => [o.sandboxId, o]));
    const rows = (
      await this.store.sandboxes.listByStates(["creating", "running", "hibernated", "stopped", "destroying"])
    ).filter(this.owns);
    for (const row of rows) {
      const item = await this.reconcileRow(row, startup, onHost).catch(
        (error: unknown): ReconcileItem => ({
          sandboxId: row.id,
          action: "failed_vanished",
          error: error instanceof Error ? error.message : String(error),
        }),
      );
      if (item) items.push(item);
    }
    // Stopped rows hold their sandbox's disk: it is no orphan.
    const liveIds = new Set(
      (await this.store.sandboxes.listByStates(["creating", "running", "hibernated", "stopped"])).map(
        (row) => row.id,
      ),
    );
    for (const observed of await this.driver.list()) {
      // Held: a Dockerfile step's sandbox or a warm pool's spare, which have no row by design.
      if (liveIds.has(observed.sandboxId) || this.sandboxes.isHeld(observed.sandboxId)) continue;
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

  private async reconcileRow(
    row: SandboxRecord,
    startup: boolean,
    onHost: ReadonlyMap<string, ObservedSandbox>,
  ): Promise<ReconcileItem | undefined> {
    const now = this.clock.now();
    // A stop, start, hibernate or resume in this process is mid-way: its row may be ahead of the
    // host (a start writes `running` before the processes exist). The next pass looks again.
    if (!startup && this.sandboxes.busy(row.id)) return undefined;
    if (row.state === "stopped") return this.reconcileStopped(row, startup);
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
    if (!alive && this.sandboxes.durable(row.driver) && onHost.has(row.id)) {
      // A host reboot (or a crash of its init) ended the processes; the disk is still there.
      const stopped = await this.sandboxes.stopVanished(
        row,
        "its processes are gone (host restart?); its disk is kept",
      );
      return stopped ? { sandboxId: row.id, action: "stopped_vanished" } : undefined;
    }
    if (!alive) {
      await this.sandboxes.markFailed(row.id, ["running", "hibernated"], "the sandbox's processes are gone");
      return { sandboxId: row.id, action: "failed_vanished" };
    }
    if (row.expiresAt <= now) {
      await this.destroy(row, `its timeout of ${row.timeoutMs} ms was reached`);
      return { sandboxId: row.id, action: "destroyed_expired" };
    }
    if (row.state === "running" && row.lastActivityAt + row.idleTimeoutMs <= now) {
      if (this.sandboxes.durable(row.driver)) {
        await this.sandboxes.stopRecord(row, `idle for ${row.idleTimeoutMs} ms`);
        return { sandboxId: row.id, action: "stopped_idle" };
      }
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

  /**
   * A stopped sandbox has no processes, and that is normal. Its hard timeout still ends it, so
   * does the inactivity period; at start-up a stop that a crash interrupted (processes still
   * there) is finished.
   */
  private async reconcileStopped(row: SandboxRecord, startup: boolean): Promise<ReconcileItem | undefined> {
    const now = this.clock.now();
    if (row.expiresAt <= now) {
      await this.destroy(row, `its timeout of ${row.timeoutMs} ms was reached`);
      return { sandboxId: row.id, action: "destroyed_expired" };
    }
    const inactiveMs = this.config.sandboxInactiveDestroyDays * DAY_MS;
    if (row.stateChangedAt + inactiveMs <= now) {
      await this.destroy(row, `stopped for more than ${this.config.sandboxInactiveDestroyDays} days`);
      return { sandboxId: row.id, action: "destroyed_inactive" };
    }
    if (!startup || !row.handle || !this.sandboxes.durable(row.driver)) return undefined;
    if (!(await this.driver.isAlive(row.handle))) return undefined;
    await this.sandboxes.stopRecord(row, "finishing a stop interrupted by a restart");
    return { sandboxId: row.id, action: "finished_stop" };
  }

  private async destroy(row: SandboxRecord, reason: string): Promise<void> {
    await this.sandboxes.destroyRecord(row, reason);
  }
}
