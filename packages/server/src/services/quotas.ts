/**
 * Per-user quotas from plans an admin defines. A user is on the plan assigned to them, else on
 * the plan named "default" if there is one, else unlimited. A request that would go past a
 * limit is refused with 429 `quota_exceeded` (`details.limit` names it, with `used` and `max`),
 * counted in metrics and reported once a minute per limit on the user's event stream.
 *
 * Per-key request rates are token buckets on the bus (shared by replicas sharing a Redis): a
 * key may burst up to its plan's requests per minute, then goes on at that rate, refilled
 * continuously; a refused request takes no token and says when the next one is there.
 */
import type { Bus, PlanLimits, PlanRecord, SandboxState, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { EventHub } from "./event-hub.js";
import type { Metrics } from "./metrics.js";
import type { SandboxDemand } from "./sandbox-service.js";

export const DEFAULT_PLAN = "default";
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
/** States whose sandboxes count as running: their processes (frozen or not) hold CPU and memory. */
const RUNNING: SandboxState[] = ["creating", "running", "hibernated"];
/** States whose sandboxes hold a disk. */
const HOLDING_DISK: SandboxState[] = ["creating", "running", "hibernated", "stopped"];
/** Largest page read when summing a user's sandboxes (bounded by maxSandboxesPerUser anyway). */
const SANDBOX_PAGE = 500;

export type LimitName = keyof PlanLimits;

export interface ModelPrice {
  inputPerMTokUsd: number;
  outputPerMTokUsd: number;
}

/**
 * The operator's price for a model, else the table's `*` entry. Model names come from requests
 * and sandboxes: only the table's own entries count, never an Object.prototype key such as
 * "constructor" (which would price usage at NaN and let it pass every cost limit).
 */
export function priceOf(
  prices: Readonly<Record<string, ModelPrice>>,
  model: string | null,
): ModelPrice | undefined {
  if (model !== null && Object.hasOwn(prices, model)) return prices[model];
  return Object.hasOwn(prices, "*") ? prices["*"] : undefined;
}

export interface QuotaUsage {
  plan: string | null;
  limits: PlanLimits;
  used: {
    runningSandboxes: number;
    cpu: number;
    memoryMb: number;
    diskMb: number;
    runsPerHour: number;
    tokensPerMonth: number;
    costPerMonthUsd: number;
  };
}

/** How long a user's plan is reused without reading the store (per-request checks stay cheap). */
const PLAN_CACHE_MS = 5_000;
const PLAN_CACHE_MAX = 10_000;
/** An admission is a few queries and one insert; the lease outlives it by far. */
const ADMISSION_LEASE_MS = 15_000;
/** How long a create waits for the user's admission lease before giving up. */
const ADMISSION_WAIT_MS = 20_000;

export class Quotas {
  private readonly planCache = new Map<string, { plan: PlanRecord | undefined; until: number }>();

  constructor(
    private readonly store: Store,
    private readonly bus: Bus,
    private readonly events: EventHub,
    private readonly metrics: Metrics,
    private readonly now: () => number,
    private readonly prices: Readonly<Record<string, ModelPrice>> = {},
  ) {}

  /**
   * Runs `work` (an admission and the insert it admits) while holding the user's admission lease
   * on the bus, so two replicas creating for one user at once cannot both pass the last slot:
   * the second waits for the first's row and counts it. Leases expire, so a replica that dies
   * holding one delays that user's creates by at most ADMISSION_LEASE_MS.
   */
  async exclusive<T>(userId: string, work: () => Promise<T>): Promise<T> {
    const name = `admit:${userId}`;
    const deadline = this.now() + ADMISSION_WAIT_MS;
    for (;;) {
      const lease = await this.bus.acquire(name, { ttlMs: ADMISSION_LEASE_MS });
      if (lease) {
        try {
          return await work();
        } finally {
          await lease.release().catch(() => false);
        }
      }
      if (this.now() >= deadline) {
        throw new PolydevError(
          "timeout",
          "another create of yours is being admitted against your plan on another server; try again",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20));
    }
  }

  /** The user's plan (null: none applies) and its limits. */
  async planFor(userId: string): Promise<{ plan: PlanRecord | undefined }> {
    const now = this.now();
    const cached = this.planCache.get(userId);
    if (cached && cached.until > now) return { plan: cached.plan };
    const assigned = await this.store.plans.planOf(userId);
    const plan = await this.store.plans.get(assigned ?? DEFAULT_PLAN);
    if (this.planCache.size >= PLAN_CACHE_MAX) this.planCache.clear();
    this.planCache.set(userId, { plan, until: now + PLAN_CACHE_MS });
    return { plan };
  }

  /** After an admin changed plans here (other replicas see it within PLAN_CACHE_MS). */
  forget(): void {
    this.planCache.clear();
  }

  async usage(userId: string): Promise<QuotaUsage> {
    const { plan } = await this.planFor(userId);
    const sandboxes = await this.sandboxTotals(userId);
    return {
      plan: plan?.name ?? null,
      limits: plan?.limits ?? {},
      used: {
        ...sandboxes,
        runsPerHour: await this.store.runs.countForUserSince(userId, this.now() - HOUR_MS),
        ...(await this.monthsUsage(userId)),
      },
    };
  }

  /** SandboxService's admission: new sandboxes must fit the running count and the totals. */
  readonly admitSandboxes = async (userId: string, demand: SandboxDemand): Promise<void> => {
    const { plan } = await this.planFor(userId);
    const limits = plan?.limits;
    if (!limits || !hasAny(limits, ["runningSandboxes", "cpu", "memoryMb", "diskMb"])) return;
    const used = await this.sandboxTotals(userId);
    const asked: Record<"runningSandboxes" | "cpu" | "memoryMb" | "diskMb", number> = {
      runningSandboxes: demand.count,
      cpu: demand.cpu * demand.count,
      memoryMb: demand.memoryMb * demand.count,
      diskMb: demand.diskMb * demand.count,
    };
    for (const limit of ["runningSandboxes", "cpu", "memoryMb", "diskMb"] as const) {
      const max = limits[limit];
      // Only what this asks for more of is checked (a plan lowered below use refuses only growth).
      if (max !== undefined && asked[limit] > 0 && used[limit] + asked[limit] > max)
        this.refuse(userId, plan.name, limit, used[limit], max, asked[limit]);
    }
  };

  /** Before a run (or group of `count` runs) is created. */
  async admitRuns(userId: string, count: number): Promise<void> {
    const { plan } = await this.planFor(userId);
    const limits = plan?.limits;
    if (!limits) return;
    if (limits.runsPerHour !== undefined) {
      const used = await this.store.runs.countForUserSince(userId, this.now() - HOUR_MS);
      if (used + count > limits.runsPerHour)
        this.refuse(userId, plan.name, "runsPerHour", used, limits.runsPerHour, count);
    }
    await this.checkMonth(userId, plan);
  }

  /** Tokens and cost since the start of the month must be under the plan's limits. */
  private async checkMonth(userId: string, plan: PlanRecord): Promise<void> {
    const { tokensPerMonth, costPerMonthUsd } = plan.limits;
    if (tokensPerMonth === undefined && costPerMonthUsd === undefined) return;
    const used = await this.monthsUsage(userId);
    if (tokensPerMonth !== undefined && used.tokensPerMonth >= tokensPerMonth)
      this.refuse(userId, plan.name, "tokensPerMonth", used.tokensPerMonth, tokensPerMonth, 0);
    if (costPerMonthUsd !== undefined && used.costPerMonthUsd >= costPerMonthUsd)
      this.refuse(userId, plan.name, "costPerMonthUsd", used.costPerMonthUsd, costPerMonthUsd, 0);
  }

  /** Before the gateway relays a provider request: the month's tokens must be under the limit. */
  readonly admitProviderRequest = async (userId: string): Promise<void> => {
    const { plan } = await this.planFor(userId);
    if (plan) await this.checkMonth(userId, plan);
  };

  /** Per API key; requests a session cookie authenticated are counted per user instead. */
  async admitRequest(userId: string, keyId: string | undefined): Promise<void> {
    const { plan } = await this.planFor(userId);
    const max = plan?.limits.requestsPerMinute;
    if (!plan || max === undefined) return;
    const who = keyId ?? `user.${userId}`;
    const taken = await this.bus.take(`ratelimit.${who}`, { capacity: max, refillPerSecond: max / 60 });
    if (!taken.allowed) {
      this.metrics.quotaRefused("requestsPerMinute");
      throw new PolydevError(
        "rate_limited",
        `this key is sending faster than its plan's ${max} requests per minute (plan ${plan.name}); retry in ${Math.ceil(taken.retryAfterMs / 1000)} s`,
        { details: { limit: "requestsPerMinute", max, retryAfterMs: taken.retryAfterMs } },
      );
    }
  }

  private refuse(
    userId: string,
    plan: string,
    limit: LimitName,
    used: number,
    max: number,
    asked: number,
  ): never {
    this.metrics.quotaRefused(limit);
    this.reportReached(userId, limit, used, max);
    throw new PolydevError(
      "quota_exceeded",
      `your plan (${plan}) allows ${max} for ${limit}; ${used} in use${asked > 0 ? ` and ${asked} more asked for` : ""}`,
      { details: { limit, used, max, plan } },
    );
  }

  /** At most one `quota.reached` event per user and limit a minute, whatever the refusals. */
  private reportReached(userId: string, limit: LimitName, used: number, max: number): void {
    this.bus
      .increment(`quota-reached.${userId}.${limit}`, { ttlMs: MINUTE_MS })
      .then((n) => {
        if (n === 1) this.events.publish(userId, "quota.reached", { limit, used, max });
      })
      .catch(() => undefined);
  }

  private async sandboxTotals(
    userId: string,
  ): Promise<{ runningSandboxes: number; cpu: number; memoryMb: number; diskMb: number }> {
    const totals = { runningSandboxes: 0, cpu: 0, memoryMb: 0, diskMb: 0 };
    let cursor: string | undefined;
    do {
      const page = await this.store.sandboxes.listForUser(userId, {
        limit: SANDBOX_PAGE,
        cursor,
        states: HOLDING_DISK,
      });
      for (const sandbox of page.items) {
        totals.diskMb += sandbox.diskMb;
        if (!RUNNING.includes(sandbox.state)) continue;
        totals.runningSandboxes += 1;
        totals.cpu += sandbox.cpu;
        totals.memoryMb += sandbox.memoryMb;
      }
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return totals;
  }

  private async monthsUsage(userId: string): Promise<{ tokensPerMonth: number; costPerMonthUsd: number }> {
    const now = new Date(this.now());
    const since = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
    const rows = await this.store.usage.summary({ userId, since });
    let tokens = 0;
    let cost = 0;
    for (const row of rows) {
      tokens += row.inputTokens + row.outputTokens;
      const price = priceOf(this.prices, row.model);
      if (price)
        cost +=
          (row.inputTokens * price.inputPerMTokUsd + row.outputTokens * price.outputPerMTokUsd) / 1_000_000;
    }
    // Rounded to a millionth of a dollar: float dust would otherwise show (0.30000000000000004).
    return { tokensPerMonth: tokens, costPerMonthUsd: Math.round(cost * 1_000_000) / 1_000_000 };
  }
}

function hasAny(limits: PlanLimits, names: LimitName[]): boolean {
  return names.some((name) => limits[name] !== undefined);
}
