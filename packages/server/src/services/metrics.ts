/**
 * Prometheus metrics (prom-client), served at GET /metrics to admins. One registry per server,
 * not the library's global one, so two servers in one process (tests) never share counters.
 */
import type { EgressAuditEvent } from "@polydev/egress";
import { Counter, Registry } from "prom-client";

export class Metrics {
  readonly registry = new Registry();
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

  egressDecision(event: EgressAuditEvent): void {
    this.egressConnections.inc({ kind: event.kind, decision: event.decision, reason: event.reason });
    if (event.bytesOut > 0) this.egressBytes.inc({ direction: "out" }, event.bytesOut);
    if (event.bytesIn > 0) this.egressBytes.inc({ direction: "in" }, event.bytesIn);
  }

  egressAuditDropped(): void {
    this.egressAuditDroppedTotal.inc();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
