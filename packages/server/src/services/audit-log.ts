/**
 * The audit log of security-relevant actions, for admins. Entries name people, keys and
 * sandboxes by id (and a key by its display prefix), never by a secret. The table is bounded:
 * every PRUNE_EVERY appends (and at start) it keeps at most `maxEvents`, none older than the
 * retention.
 */
import type { AuditOutcome, Clock, Store } from "@polydev/core";
import type { Logger } from "pino";

const PRUNE_EVERY = 500;
const DAY_MS = 86_400_000;

export interface AuditActor {
  userId: string;
  userName: string;
}

export interface AuditEntry {
  action: AuditAction;
  outcome?: AuditOutcome;
  actor?: AuditActor | undefined;
  /** Set when no user is known (a failed sign-in): the name that was tried. */
  actorName?: string | undefined;
  target?: { type: "user" | "api_key" | "credential" | "sandbox" | "session"; id: string } | undefined;
  ip?: string | undefined;
  details?: Record<string, string | number | boolean | null>;
}

export type AuditAction =
  | "sign_in"
  | "sign_out"
  | "api_key.create"
  | "api_key.revoke"
  | "password.change"
  | "credential.add"
  | "credential.remove"
  | "user.create"
  | "user.role_change"
  | "oidc.provision"
  | "admin.sandbox_action";

export const AUDIT_ACTIONS: readonly AuditAction[] = [
  "sign_in",
  "sign_out",
  "api_key.create",
  "api_key.revoke",
  "password.change",
  "credential.add",
  "credential.remove",
  "user.create",
  "user.role_change",
  "oidc.provision",
  "admin.sandbox_action",
];

export class AuditLog {
  private appendsSincePrune = 0;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly retention: { maxEvents: number; retentionDays: number },
    private readonly log: Logger,
  ) {}

  async record(entry: AuditEntry): Promise<void> {
    await this.store.audit.append({
      at: this.clock.now(),
      action: entry.action,
      outcome: entry.outcome ?? "success",
      actorId: entry.actor?.userId ?? null,
      actorName: entry.actor?.userName ?? entry.actorName?.slice(0, 200) ?? null,
      targetType: entry.target?.type ?? null,
      targetId: entry.target?.id ?? null,
      ip: entry.ip ?? null,
      details: entry.details ?? {},
    });
    this.appendsSincePrune += 1;
    if (this.appendsSincePrune >= PRUNE_EVERY) {
      this.appendsSincePrune = 0;
      // Off the request's path; a failed prune is retried after the next batch.
      this.prune().catch((error: unknown) => this.log.warn({ err: error }, "pruning the audit log failed"));
    }
  }

  async prune(): Promise<number> {
    return this.store.audit.prune(
      this.retention.maxEvents,
      this.clock.now() - this.retention.retentionDays * DAY_MS,
    );
  }
}
