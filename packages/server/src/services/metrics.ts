/**
 * Prometheus metrics (prom-client), served at GET /metrics to admins (or on `metricsListen`).
 * One registry per server, not the library's global one, so two servers in one process (tests)
 * never share counters. What the database already knows (users, sandboxes by state, live runs)
 * is counted at scrape time; what passes by (creates, execs, requests, tokens) is counted as it
 * happens. Every label takes values from a bounded set: route patterns, never URLs; a model name
 * a sandbox made up becomes "other" once a provider has `MAX_MODELS_PER_PROVIDER`.
 */
import { cpus, freemem, totalmem } from "node:os";
import type { SandboxState, Store } from "@polydev/core";
import type { EgressAuditEvent } from "@polydev/egress";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Distinct model labels kept per provider; past it every new name counts as "other". */
export const MAX_MODELS_PER_PROVIDER = 64;
const MODEL_LABEL = /^[A-Za-z0-9._:/@-]{1,80}$/;
const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Live states whose sandboxes hold capacity on this node. */
const ALLOCATING: SandboxState[] = ["creating", "running"];

export interface RunFinished {
  agent: string;
  state: string;
  durationMs: number;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly modelsSeen = new Map<string, Set<string>>();

  private readonly egressConnections = new Counter({
    name: "polydev_egress_connections_total",
    help: "Connections and DNS queries of allow-list sandboxes, by what the egress policy decided and why",
    labelNames: ["kind", "decision", "reason"] as const,
    registers: [this.registry],
  });
  private readonly egressBytes = new Counter({
    name: "polydev_egress_bytes_total",
    help: "Bytes carried for allowed egress connections (out: sandbox to world)",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });
  private readonly egressAuditDroppedTotal = new Counter({
    name: "polydev_egress_audit_dropped_total",
    help: "Audit rows not written because a sandbox made decisions faster than they could be stored",
    registers: [this.registry],
  });
  private readonly creates = new Counter({
    name: "polydev_sandbox_creates_total",
    help: "Sandbox creates that finished, by driver and outcome (running or failed)",
    labelNames: ["driver", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly createSeconds = new Histogram({
    name: "polydev_sandbox_create_duration_seconds",
    help: "From a create's row being written to the sandbox running (or failing)",
    labelNames: ["driver", "outcome"] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  private readonly execs = new Counter({
    name: "polydev_execs_total",
    help: "Commands started in sandboxes through the exec API, by how the answer was sent",
    labelNames: ["mode"] as const,
    registers: [this.registry],
  });
  private readonly runsFinished = new Counter({
    name: "polydev_runs_finished_total",
    help: "Runs that reached a final state, by agent and state",
    labelNames: ["agent", "state"] as const,
    registers: [this.registry],
  });
  private readonly runSeconds = new Histogram({
    name: "polydev_run_duration_seconds",
    help: "From a run starting (or being queued, if it never started) to its final state",
    labelNames: ["agent", "state"] as const,
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [this.registry],
  });
  private readonly gatewayRequests = new Counter({
    name: "polydev_gateway_requests_total",
    help: "Provider requests relayed by the gateway (and the builtin agent), by provider, model and status class",
    labelNames: ["provider", "model", "status"] as const,
    registers: [this.registry],
  });
  private readonly gatewayTokens = new Counter({
    name: "polydev_gateway_tokens_total",
    help: "Tokens the providers reported, by provider, model and direction (input or output)",
    labelNames: ["provider", "model", "direction"] as const,
    registers: [this.registry],
  });
  private readonly httpSeconds = new Histogram({
    name: "polydev_http_request_duration_seconds",
    help: "HTTP requests by method, route pattern and status code (streams: until the answer ended)",
    labelNames: ["method", "route", "status_code"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  private readonly eventStreams = new Gauge({
    name: "polydev_event_streams",
    help: "Open event-stream clients (GET /v1/events), by transport",
    labelNames: ["transport"] as const,
    registers: [this.registry],
  });
  private readonly eventStreamsDropped = new Counter({
    name: "polydev_event_streams_dropped_total",
    help: "Event-stream clients disconnected because they read too slowly",
    registers: [this.registry],
  });
  private readonly quotaRefusals = new Counter({
    name: "polydev_quota_refusals_total",
    help: "Requests refused because a user reached a quota or rate limit, by limit",
    labelNames: ["limit"] as const,
    registers: [this.registry],
  });

  /** Adds the gauges read from the store when Prometheus scrapes. */
  observeStore(store: Store, nodeName: string): void {
    const registry = this.registry;
    new Gauge({
      name: "polydev_users",
      help: "Users",
      registers: [registry],
      async collect() {
        this.set(await store.users.count());
      },
    });
    new Gauge({
      name: "polydev_sandboxes",
      help: "Sandboxes by state and driver (destroyed ones included: they stay as rows)",
      labelNames: ["state", "driver"] as const,
      registers: [registry],
      async collect() {
        const rows = await store.sandboxes.countByStateAndDriver();
        this.reset();
        for (const row of rows) this.set({ state: row.state, driver: row.driver }, row.count);
      },
    });
    new Gauge({
      name: "polydev_runs",
      help: "Runs not yet finished, by agent and state (queued or running)",
      labelNames: ["agent", "state"] as const,
      registers: [registry],
      async collect() {
        const runs = await store.runs.listByStates(["queued", "running"]);
        this.reset();
        for (const run of runs) this.inc({ agent: run.agent, state: run.state });
      },
    });
    new Gauge({
      name: "polydev_node_capacity",
      help: "This node's capacity: cpus, memory_bytes and free_memory_bytes of the host",
      labelNames: ["node", "resource"] as const,
      registers: [registry],
      collect() {
        this.set({ node: nodeName, resource: "cpus" }, cpus().length);
        this.set({ node: nodeName, resource: "memory_bytes" }, totalmem());
        this.set({ node: nodeName, resource: "free_memory_bytes" }, freemem());
      },
    });
    new Gauge({
      name: "polydev_node_allocated",
      help: "What creating and running sandboxes were given: cpus, memory_bytes and disk_bytes",
      labelNames: ["node", "resource"] as const,
      registers: [registry],
      async collect() {
        const live = await store.sandboxes.listByStates(ALLOCATING);
        let cpu = 0;
        let memoryMb = 0;
        let diskMb = 0;
        for (const sandbox of live) {
          cpu += sandbox.cpu;
          memoryMb += sandbox.memoryMb;
          diskMb += sandbox.diskMb;
        }
        this.set({ node: nodeName, resource: "cpus" }, cpu);
        this.set({ node: nodeName, resource: "memory_bytes" }, memoryMb * 1024 * 1024);
        this.set({ node: nodeName, resource: "disk_bytes" }, diskMb * 1024 * 1024);
      },
    });
  }

  egressDecision(event: EgressAuditEvent): void {
    this.egressConnections.inc({ kind: event.kind, decision: event.decision, reason: event.reason });
    if (event.bytesOut > 0) this.egressBytes.inc({ direction: "out" }, event.bytesOut);
    if (event.bytesIn > 0) this.egressBytes.inc({ direction: "in" }, event.bytesIn);
  }

  egressAuditDropped(): void {
    this.egressAuditDroppedTotal.inc();
  }

  createFinished(driver: string, outcome: "running" | "failed", durationMs: number): void {
    this.creates.inc({ driver, outcome });
    this.createSeconds.observe({ driver, outcome }, Math.max(0, durationMs) / 1000);
  }

  execStarted(mode: "buffered" | "stream"): void {
    this.execs.inc({ mode });
  }

  runFinished(run: RunFinished): void {
    this.runsFinished.inc({ agent: run.agent, state: run.state });
    this.runSeconds.observe({ agent: run.agent, state: run.state }, Math.max(0, run.durationMs) / 1000);
  }

  gatewayUsage(usage: {
    provider: string;
    model: string;
    status: number;
    inputTokens: number;
    outputTokens: number;
  }): void {
    const model = this.modelLabel(usage.provider, usage.model);
    const labels = { provider: usage.provider, model };
    this.gatewayRequests.inc({ ...labels, status: `${Math.floor(usage.status / 100)}xx` });
    if (usage.inputTokens > 0) this.gatewayTokens.inc({ ...labels, direction: "input" }, usage.inputTokens);
    if (usage.outputTokens > 0)
      this.gatewayTokens.inc({ ...labels, direction: "output" }, usage.outputTokens);
  }

  /** `route` is the matched pattern (`/v1/sandboxes/:id`) or "unmatched"; never the URL. */
  httpRequest(method: string, route: string, statusCode: number, durationMs: number): void {
    this.httpSeconds.observe(
      { method: HTTP_METHODS.has(method) ? method : "OTHER", route, status_code: String(statusCode) },
      durationMs / 1000,
    );
  }

  eventStreamOpened(transport: "sse" | "websocket"): () => void {
    this.eventStreams.inc({ transport });
    return () => this.eventStreams.dec({ transport });
  }

  eventStreamDropped(): void {
    this.eventStreamsDropped.inc();
  }

  quotaRefused(limit: string): void {
    this.quotaRefusals.inc({ limit });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The provider is one of a fixed few; the model comes from a sandbox's request body. */
  private modelLabel(provider: string, model: string): string {
    if (!MODEL_LABEL.test(model)) return "other";
    let seen = this.modelsSeen.get(provider);
    if (!seen) {
      seen = new Set();
      this.modelsSeen.set(provider, seen);
    }
    if (seen.has(model)) return model;
    if (seen.size >= MAX_MODELS_PER_PROVIDER) return "other";
    seen.add(model);
    return model;
  }
}
