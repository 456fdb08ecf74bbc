/**
 * This server as a node among replicas sharing one database and bus: it registers its name,
 * internal URL, drivers and capacity, and refreshes the record (with its running sandboxes) every
 * `nodeRefreshIntervalMs`; a record not refreshed for `nodeLeaseMs` belongs to a node that
 * stopped answering (see dead-nodes.ts). Placement of creates reads these records.
 *
 * Placement policy: among live nodes that run the requested driver and have room for the
 * sandbox's memory (reserved memory of their creating and running sandboxes plus this one within
 * their total memory), the least loaded by reserved memory as a share of its total wins; a tie
 * goes to the node that received the request (no forwarding), then by name. When no node has
 * room, the receiving node takes it (and answers as a single server would).
 */
import { availableParallelism, totalmem } from "node:os";
import type { Clock, NodeRecord, SandboxRecord, Store } from "@polydev/core";
import type { Logger } from "pino";

const MIB = 1024 * 1024;

export interface NodeRegistryOptions {
  name: string;
  /** Read at each refresh: the listen address is known only once the server listens. */
  url: () => string;
  drivers: string[];
  refreshIntervalMs: number;
  leaseMs: number;
  store: Store;
  clock: Clock;
  log: Logger;
  /** Capacity, measured from the host unless given (tests give small ones). */
  capacity?: { cpuCount: number; memoryMb: number } | undefined;
}

/** States whose sandboxes hold a node's memory. */
const RESERVING = ["creating", "running"] as const;

export class NodeRegistry {
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly startedAt: number;
  private readonly capacity: { cpuCount: number; memoryMb: number };

  constructor(private readonly options: NodeRegistryOptions) {
    this.startedAt = options.clock.now();
    this.capacity = options.capacity ?? {
      cpuCount: availableParallelism(),
      memoryMb: Math.floor(totalmem() / MIB),
    };
  }

  get name(): string {
    return this.options.name;
  }

  /** Whether the row is this node's: rows made before nodes existed (null) count as everyone's own. */
  owns(row: Pick<SandboxRecord, "node">): boolean {
    return row.node === null || row.node === this.options.name;
  }

  /** Registers now, then keeps the record fresh until `stop`. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((error: unknown) =>
        this.options.log.warn({ err: error }, "could not refresh this node's registration"),
      );
    }, this.options.refreshIntervalMs);
    this.timer.unref();
  }

  /** Stops refreshing. The record stays: a restart within the lease keeps the node's sandboxes. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.refreshing?.catch(() => undefined);
  }

  /** Writes the record now (after a create, so placement sees the new load at once). */
  refresh(): Promise<void> {
    this.refreshing ??= this.writeRecord().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** The node's record while its lease holds; undefined for an unknown or expired node. */
  async live(name: string): Promise<NodeRecord | undefined> {
    const node = await this.options.store.nodes.get(name);
    return node && node.expiresAt > this.options.clock.now() ? node : undefined;
  }

  async liveNodes(): Promise<NodeRecord[]> {
    const now = this.options.clock.now();
    return (await this.options.store.nodes.list()).filter((node) => node.expiresAt > now);
  }

  /** The node a new sandbox goes to (see the policy above); this node's name when it is the one. */
  async place(demand: { driver: string; memoryMb: number }): Promise<NodeRecord | undefined> {
    const candidates = (await this.liveNodes()).filter(
      (node) =>
        node.drivers.includes(demand.driver) && node.reservedMemoryMb + demand.memoryMb <= node.memoryMb,
    );
    const load = (node: NodeRecord): number => (node.reservedMemoryMb + demand.memoryMb) / node.memoryMb;
    candidates.sort(
      (a, b) =>
        load(a) - load(b) ||
        Number(b.name === this.name) - Number(a.name === this.name) ||
        (a.name < b.name ? -1 : 1),
    );
    const chosen = candidates[0];
    return chosen === undefined || chosen.name === this.name ? undefined : chosen;
  }

  private async writeRecord(): Promise<void> {
    const { store, clock } = this.options;
    const mine = (await store.sandboxes.listByStates([...RESERVING])).filter(
      (row) => row.node === this.options.name,
    );
    const now = clock.now();
    await store.nodes.put({
      name: this.options.name,
      url: this.options.url(),
      drivers: this.options.drivers,
      cpuCount: this.capacity.cpuCount,
      memoryMb: this.capacity.memoryMb,
      runningSandboxes: mine.length,
      reservedMemoryMb: mine.reduce((sum, row) => sum + row.memoryMb, 0),
      startedAt: this.startedAt,
      refreshedAt: now,
      expiresAt: now + this.options.leaseMs,
    });
  }
}
