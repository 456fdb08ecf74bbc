/**
 * Keeps every running allow-list sandbox's egress interception on and decides each intercepted
 * connection with the policy engine (@polydev/egress). The sandbox's rules are compiled here and
 * swapped in place when its policy or one of its presets changes, so a change applies to the next
 * connection without touching the sandbox. Every decision is counted (metrics), kept in the
 * sandbox's audit log (bounded: at most AUDIT_KEEP rows per sandbox, written in batches, and at
 * most AUDIT_PENDING_MAX waiting per sandbox: beyond that a sandbox flooding connections loses
 * audit rows, counted as dropped, never memory) and published to live subscribers.
 */
import { EventEmitter } from "node:events";
import { networkInterfaces } from "node:os";
import type { Duplex } from "node:stream";
import type {
  AgentConnection,
  EgressAuditRecord,
  EgressDestination,
  EgressPolicy,
  ForwardedPort,
  NewEgressAuditRecord,
  SandboxRecord,
  Store,
} from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { CompiledEgressRules, EgressAuditEvent } from "@polydev/egress";
import { compileEgressRules, EgressGuard } from "@polydev/egress";
import type { Logger } from "pino";
import type { Metrics } from "./metrics.js";
import type { EffectiveRules, NetworkPolicies } from "./network-policies.js";

/** Audit rows kept per sandbox; older ones are pruned as new ones arrive. */
export const AUDIT_KEEP = 2_000;
const AUDIT_PENDING_MAX = 1_000;
const AUDIT_FLUSH_MS = 250;
/** Waits before re-opening an interception whose agent connection went away. */
const REOPEN_DELAYS_MS = [100, 500, 2_000, 5_000];

export interface EgressHubOptions {
  /** The server's own DNS servers ("addr" or "addr:port"); default: the system's. */
  dnsServers?: string[] | undefined;
  upstreamProxy?: string | undefined;
}

/** One sandbox's interception: its current rules and the audit rows waiting to be written. */
class Interception {
  readonly pending: NewEgressAuditRecord[] = [];
  /** Wider rules in force for a while (a run's setup phase), added to the sandbox's own. */
  readonly widenings = new Set<EffectiveRules>();
  flushing: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
  closed = false;
  forwarded: Promise<ForwardedPort>;

  constructor(
    public sandbox: SandboxRecord,
    public rules: CompiledEgressRules,
    readonly guard: EgressGuard,
    open: (interception: Interception) => Promise<ForwardedPort>,
  ) {
    this.forwarded = open(this);
  }
}

/** The host's own addresses: never a sandbox's destination, whatever its rules say. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal)
    .map((a) => (a?.family === "IPv6" ? `${a.address.split("%")[0]}/128` : `${a?.address}/32`));
}

export class EgressHub {
  /** One guard per upstream proxy in use (the operator's, or one an admin pinned to a user). */
  private readonly guards = new Map<string, EgressGuard>();
  private readonly neverReachable = hostAddresses();
  private readonly interceptions = new Map<string, Interception>();
  private readonly live = new EventEmitter();
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly policies: NetworkPolicies,
    private readonly agentFor: (sandbox: SandboxRecord) => Promise<AgentConnection>,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: EgressHubOptions,
  ) {
    // Every SSE subscriber adds a listener; there is no leak to warn about.
    this.live.setMaxListeners(0);
  }

  /**
   * Starts intercepting a running allow-list sandbox's egress (idempotent); resolves once its
   * relay listens, so nothing the sandbox sends after this is lost.
   */
  async ensure(sandbox: SandboxRecord): Promise<void> {
    if (sandbox.network !== "allowlist" || !sandbox.egressPolicy || this.stopped) return;
    const existing = this.interceptions.get(sandbox.id);
    if (existing) {
      await existing.forwarded;
      return;
    }
    const rules = compileEgressRules(await this.policies.effective(sandbox.egressPolicy));
    const proxy = (await this.store.users.getEgressProxy(sandbox.userId)) ?? this.options.upstreamProxy;
    const interception = new Interception(sandbox, rules, this.guardFor(proxy), (self) => this.open(self));
    this.interceptions.set(sandbox.id, interception);
    try {
      await interception.forwarded;
    } catch (error) {
      if (this.interceptions.get(sandbox.id) === interception) this.interceptions.delete(sandbox.id);
      throw error;
    }
  }

  /** Recompiles a sandbox's rules (its policy changed): the next connection sees them. */
  async policyChanged(sandbox: SandboxRecord): Promise<void> {
    const interception = this.interceptions.get(sandbox.id);
    if (!interception || !sandbox.egressPolicy) return;
    interception.sandbox = sandbox;
    await this.recompile(interception);
  }

  /**
   * Adds `policy`'s rules to the sandbox's own until the returned function is called (a run's
   * "setup online, agent restricted": the setup command runs under the wider rules). Every
   * connection of the sandbox meanwhile sees them, whoever makes it.
   */
  async widen(sandbox: SandboxRecord, policy: EgressPolicy): Promise<() => Promise<void>> {
    await this.ensure(sandbox);
    const interception = this.interceptions.get(sandbox.id);
    if (!interception)
      throw new PolydevError("sandbox_not_running", `sandbox ${sandbox.id} is not intercepted`);
    const extra = await this.policies.effective(policy);
    interception.widenings.add(extra);
    await this.recompile(interception);
    return async () => {
      interception.widenings.delete(extra);
      await this.recompile(interception);
    };
  }

  private async recompile(interception: Interception): Promise<void> {
    const policy = interception.sandbox.egressPolicy;
    if (!policy) return;
    const own = await this.policies.effective(policy);
    const allow = [...own.allow];
    const deny = [...own.deny];
    for (const extra of interception.widenings) allow.push(...extra.allow);
    interception.rules = compileEgressRules({ allow, deny });
  }

  /** A preset changed or went: every sandbox naming it gets its rules recompiled. */
  async presetChanged(name: string): Promise<void> {
    for (const interception of this.interceptions.values()) {
      if (interception.sandbox.egressPolicy?.presets.includes(name))
        await this.policyChanged(interception.sandbox);
    }
  }

  /** Audit events of one sandbox as they happen, until `signal` aborts. */
  subscribe(sandboxId: string, onEvent: (event: EgressAuditRecord) => void, signal: AbortSignal): void {
    const listener = (event: EgressAuditRecord): void => onEvent(event);
    this.live.on(sandboxId, listener);
    signal.addEventListener("abort", () => this.live.off(sandboxId, listener), { once: true });
  }

  /** The sandbox ended: stop intercepting and write what is left of its audit. */
  async sandboxEnded(sandboxId: string): Promise<void> {
    const interception = this.interceptions.get(sandboxId);
    if (!interception) return;
    this.interceptions.delete(sandboxId);
    interception.closed = true;
    interception.guard.forget(sandboxId);
    interception.forwarded.then((f) => f.close()).catch(() => undefined);
    await this.flush(interception);
  }

  async close(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.interceptions.keys()].map((id) => this.sandboxEnded(id)));
  }

  private async open(interception: Interception): Promise<ForwardedPort> {
    const id = interception.sandbox.id;
    const agent = await this.agentFor(interception.sandbox);
    const forwarded = await agent.interceptEgress((socket: Duplex, destination: EgressDestination) =>
      interception.guard.handle(socket, destination, {
        id,
        rules: () => interception.rules,
        onAudit: (event) => this.audit(interception, event),
      }),
    );
    this.log.info({ sandboxId: id }, "egress interception on");
    // The agent connection went away (server-side close, agent restart): open it again while the
    // sandbox is still ours and running.
    forwarded.closed.then(() => this.reopen(interception, 0)).catch(() => undefined);
    return forwarded;
  }

  private reopen(interception: Interception, attempt: number): void {
    if (
      interception.closed ||
      this.stopped ||
      this.interceptions.get(interception.sandbox.id) !== interception
    )
      return;
    const delay = REOPEN_DELAYS_MS[Math.min(attempt, REOPEN_DELAYS_MS.length - 1)] ?? 5_000;
    const timer = setTimeout(() => {
      void this.store.sandboxes
        .get(interception.sandbox.id)
        .then(async (row) => {
          if (interception.closed || row?.state !== "running") {
            if (row?.state !== "hibernated") await this.sandboxEnded(interception.sandbox.id);
            else if (!interception.closed) this.reopen(interception, attempt + 1);
            return;
          }
          interception.sandbox = row;
          interception.forwarded = this.open(interception);
          await interception.forwarded;
        })
        .catch((error: unknown) => {
          this.log.warn(
            { err: error, sandboxId: interception.sandbox.id },
            "could not re-open egress interception",
          );
          this.reopen(interception, attempt + 1);
        });
    }, delay);
    timer.unref();
  }

  private audit(interception: Interception, event: EgressAuditEvent): void {
    this.metrics.egressDecision(event);
    if (interception.pending.length >= AUDIT_PENDING_MAX) {
      this.metrics.egressAuditDropped();
      return;
    }
    interception.pending.push({
      at: event.at.getTime(),
      kind: event.kind,
      host: event.host,
      address: event.address,
      port: event.port,
      decision: event.decision,
      reason: event.reason,
      bytesOut: event.bytesOut,
      bytesIn: event.bytesIn,
      durationMs: event.durationMs,
    });
    if (!interception.timer && !interception.flushing) {
      interception.timer = setTimeout(() => {
        interception.timer = undefined;
        void this.flush(interception);
      }, AUDIT_FLUSH_MS);
      interception.timer.unref();
    }
  }

  /** Writes the pending audit rows (one batch), prunes old ones, then tells live subscribers. */
  private flush(interception: Interception): Promise<void> {
    if (interception.timer) {
      clearTimeout(interception.timer);
      interception.timer = undefined;
    }
    if (interception.flushing) return interception.flushing.then(() => this.flush(interception));
    const batch = interception.pending.splice(0);
    if (batch.length === 0) return Promise.resolve();
    const sandboxId = interception.sandbox.id;
    const flushing = (async () => {
      try {
        await this.store.egressAudit.append(sandboxId, batch);
        await this.store.egressAudit.prune(sandboxId, AUDIT_KEEP);
        if (this.live.listenerCount(sandboxId) > 0) {
          const written = await this.store.egressAudit.list(sandboxId, { limit: batch.length });
          for (const row of written.reverse()) this.live.emit(sandboxId, row);
        }
      } catch (error) {
        // The sandbox's row is gone (destroyed and purged) or the store is closing: the batch
        // has nowhere to go.
        this.log.warn({ err: error, sandboxId, rows: batch.length }, "could not write egress audit rows");
      }
    })();
    interception.flushing = flushing;
    return flushing.finally(() => {
      interception.flushing = undefined;
      // Rows that arrived while this batch was written.
      if (interception.pending.length > 0) void this.flush(interception);
    });
  }

  private guardFor(proxy: string | undefined): EgressGuard {
    const key = proxy ?? "";
    let guard = this.guards.get(key);
    if (!guard) {
      guard = new EgressGuard({
        dnsServers: this.options.dnsServers,
        upstreamProxy: proxy,
        neverReachable: this.neverReachable,
      });
      this.guards.set(key, guard);
    }
    return guard;
  }

  /** For tests and the admin overview: how many sandboxes are intercepted right now. */
  get size(): number {
    return this.interceptions.size;
  }
}
