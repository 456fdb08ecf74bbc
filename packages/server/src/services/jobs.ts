/**
 * Background jobs: the server's periodic work, each with a name, an interval and a scope. A
 * cluster-wide job runs once per interval across every replica sharing the store and bus: a
 * replica takes the job's bus lease (renewed while the job runs), then runs it only if the
 * store's record says nobody started it within the interval. A per-node job runs on each node
 * (its work is that host's: its driver, its processes). Every run's start, end, outcome, error
 * and node is recorded in the store for `GET /v1/admin/jobs`. A job that throws is recorded as
 * failed and runs again at its next interval; it never stops the others or the server.
 */
import type { Bus, BusLease, Clock, JobRunRecord, Store } from "@polydev/core";
import type { Logger } from "pino";

export type JobScope = "cluster" | "node";

export interface JobDefinition {
  /** Also the lease's name ("job:<name>"): [A-Za-z0-9._-]. */
  name: string;
  scope: JobScope;
  intervalMs: number;
  /**
   * A cluster job's own lease (default: the runner's). A replica that dies holding it blocks the
   * job until it expires, so a job that must follow a death quickly takes a short one.
   */
  leaseTtlMs?: number;
  /** The signal aborts when the server stops or a cluster job's lease is lost. */
  run(signal: AbortSignal): Promise<void>;
}

export interface JobRunnerOptions {
  store: Store;
  bus: Bus;
  clock: Clock;
  node: string;
  log: Logger;
  /** How long a cluster job's lease lasts unless renewed (renewed at a third of it). */
  leaseTtlMs?: number;
}

/** A failure's message is stored: bounded, so a job cannot make the store keep megabytes. */
const MAX_ERROR_CHARS = 2000;
const DEFAULT_LEASE_TTL_MS = 30_000;

export type JobRunResult = "ran" | "skipped";

export class JobRunner {
  private readonly jobs = new Map<string, JobDefinition>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Map<string, Promise<JobRunResult>>();
  private readonly stopping = new AbortController();
  private readonly leaseTtlMs: number;

  constructor(private readonly options: JobRunnerOptions) {
    this.leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  add(job: JobDefinition): void {
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(job.name)) throw new Error(`bad job name ${job.name}`);
    if (this.jobs.has(job.name)) throw new Error(`job ${job.name} is already registered`);
    this.jobs.set(job.name, job);
  }

  names(): string[] {
    return [...this.jobs.keys()];
  }

  /** Schedules every job: each first runs one interval from now, then one interval after each run. */
  start(): void {
    for (const job of this.jobs.values()) this.schedule(job);
  }

  /**
   * Runs the job now (a cluster job only if no replica started it within its interval, unless
   * `force`). Concurrent calls on one server share the run in progress. Rejects only for a name
   * that was never added: a job's own failure is recorded, not thrown.
   */
  runNow(name: string, options: { force?: boolean } = {}): Promise<JobRunResult> {
    const job = this.jobs.get(name);
    if (!job) return Promise.reject(new Error(`no job named ${name}`));
    let pending = this.running.get(name);
    if (!pending) {
      pending = this.runOnce(job, options.force ?? false).finally(() => this.running.delete(name));
      this.running.set(name, pending);
    }
    return pending;
  }

  /** The last run of every job in this cluster (cluster jobs once, per-node jobs per node). */
  async lastRuns(): Promise<JobRunRecord[]> {
    return this.options.store.jobRuns.list();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.all([...this.running.values()]);
  }

  private schedule(job: JobDefinition): void {
    if (this.stopping.signal.aborted) return;
    const timer = setTimeout(() => {
      this.timers.delete(job.name);
      void this.runNow(job.name).finally(() => this.schedule(job));
    }, job.intervalMs);
    timer.unref();
    this.timers.set(job.name, timer);
  }

  private async runOnce(job: JobDefinition, force: boolean): Promise<JobRunResult> {
    const { log } = this.options;
    try {
      if (job.scope === "node") {
        await this.execute(job, this.options.node, this.stopping.signal);
        return "ran";
      }
      return await this.runClusterJob(job, force);
    } catch (error) {
      // Only the bookkeeping can land here (the job's own failure is recorded in `execute`).
      log.error({ err: error, job: job.name }, "a background job could not be run or recorded");
      return "skipped";
    }
  }

  private async runClusterJob(job: JobDefinition, force: boolean): Promise<JobRunResult> {
    const { bus, store, clock } = this.options;
    const lease = await bus.acquire(`job:${job.name}`, { ttlMs: job.leaseTtlMs ?? this.leaseTtlMs });
    if (!lease) return "skipped";
    const lost = new AbortController();
    const signal = AbortSignal.any([this.stopping.signal, lost.signal]);
    const renewal = this.keepRenewing(lease, job, lost);
    try {
      if (!force) {
        // Another replica ran it within the interval: this one's turn is skipped. The slack lets
        // replicas whose timers fire a little apart agree that one run is this interval's.
        const last = (await store.jobRuns.list()).find((r) => r.job === job.name && r.scope === "");
        const slackMs = Math.min(1000, job.intervalMs / 10);
        if (last && clock.now() - last.startedAt < job.intervalMs - slackMs) return "skipped";
      }
      await this.execute(job, "", signal);
      return "ran";
    } finally {
      clearInterval(renewal);
      await lease.release().catch(() => false);
    }
  }

  private keepRenewing(lease: BusLease, job: JobDefinition, lost: AbortController): NodeJS.Timeout {
    const ttlMs = job.leaseTtlMs ?? this.leaseTtlMs;
    const timer = setInterval(() => {
      lease.renew(ttlMs).then(
        (held) => {
          if (held) return;
          this.options.log.warn({ job: job.name }, "a background job's lease was lost; stopping it");
          lost.abort(new Error("the job's lease was lost"));
        },
        (error: unknown) =>
          this.options.log.warn({ err: error, job: job.name }, "renewing a job lease failed"),
      );
    }, ttlMs / 3);
    timer.unref();
    return timer;
  }

  private async execute(job: JobDefinition, scope: string, signal: AbortSignal): Promise<void> {
    const { store, clock, node, log } = this.options;
    const startedAt = clock.now();
    const base = { job: job.name, scope, node, startedAt };
    await store.jobRuns.put({ ...base, outcome: "running", error: null, endedAt: null });
    let error: string | null = null;
    try {
      await job.run(signal);
    } catch (thrown) {
      error = (thrown instanceof Error ? thrown.message : String(thrown)).slice(0, MAX_ERROR_CHARS);
      log.warn({ err: thrown, job: job.name }, "a background job failed; it runs again at its next interval");
    }
    await store.jobRuns.put({
      ...base,
      outcome: error === null ? "succeeded" : "failed",
      error,
      endedAt: clock.now(),
    });
  }
}
