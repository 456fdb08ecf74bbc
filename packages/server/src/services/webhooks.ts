/**
 * Webhooks: users register endpoints; when a run or a group of runs ends, one delivery per
 * subscribed webhook is queued in the store (durable across restarts) and sent, signed, by the
 * `webhook-deliveries` background job, which holds a cluster lease so one replica sends each
 * delivery. A delivery that fails is retried with exponential back-off until its attempts run out.
 * The signing secret is answered once at creation and otherwise exists only sealed by the vault.
 */
import { randomBytes } from "node:crypto";
import type { RunRecord, Store, WebhookDeliveryRecord, WebhookRecord } from "@polydev/core";
import { FINAL_RUN_STATES, PolydevError } from "@polydev/core";
import type { EnvelopeVault } from "@polydev/vault";
import type { Logger } from "pino";
import type { Agent } from "undici";
import type { PolydevConfig } from "../config.js";
import { newId } from "./api-keys.js";
import { webhookSecretOwner } from "./hook-secrets.js";
import {
  checkedAddress,
  parseWebhookUrl,
  SIGNATURE_HEADER,
  sendWebhook,
  signatureHeader,
  webhookDispatcher,
} from "./webhook-sender.js";

export const WEBHOOK_EVENTS = ["run.finished", "run.failed", "group.finished", "group.failed"] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Run states that count as a failure for `run.failed` and `group.failed`. */
const FAILED_STATES = ["failed", "timed_out"];
/** Deliveries one pass of the job sends at most, and how many at once. */
const BATCH = 50;
const PARALLEL = 8;
const DAY_MS = 24 * 60 * 60 * 1000;

export type WebhookSettings = PolydevConfig["webhooks"];

export interface WebhookView {
  id: string;
  url: string;
  events: string[];
  createdAt: string;
}

export interface DeliveryView {
  id: string;
  event: string;
  state: WebhookDeliveryRecord["state"];
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  createdAt: string;
  updatedAt: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function presentWebhook(webhook: WebhookRecord): WebhookView {
  return { id: webhook.id, url: webhook.url, events: webhook.events, createdAt: iso(webhook.createdAt) };
}

export function presentDelivery(delivery: WebhookDeliveryRecord): DeliveryView {
  return {
    id: delivery.id,
    event: delivery.event,
    state: delivery.state,
    attempts: delivery.attempts,
    lastStatus: delivery.lastStatus,
    lastError: delivery.lastError,
    nextAttemptAt: delivery.nextAttemptAt === null ? null : iso(delivery.nextAttemptAt),
    createdAt: iso(delivery.createdAt),
    updatedAt: iso(delivery.updatedAt),
  };
}

/** The delay before attempt `attempt + 1`, after `attempt` failed ones: base, 4×, 16×, … */
export function retryDelayMs(settings: WebhookSettings, attempt: number): number {
  return settings.retryBaseMs * 4 ** Math.max(0, attempt - 1);
}

export class WebhookService {
  private readonly dispatcher: Agent;
  /** Asks the delivery job to run soon (set once the job runner exists). */
  private kick: () => void = () => undefined;

  constructor(
    private readonly store: Store,
    private readonly vault: EnvelopeVault,
    private readonly settings: WebhookSettings,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.dispatcher = webhookDispatcher(settings.allowPrivate);
  }

  onQueued(kick: () => void): void {
    this.kick = kick;
  }

  async create(
    userId: string,
    input: { url: string; events?: string[] | undefined },
  ): Promise<{ webhook: WebhookRecord; secret: string }> {
    const url = parseWebhookUrl(input.url);
    // Refused now, with the reason, rather than at every delivery; checked again at each send.
    if (!this.settings.allowPrivate) await checkedAddress(url.hostname);
    const count = await this.store.webhooks.countForUser(userId);
    if (count >= this.settings.maxPerUser)
      throw new PolydevError(
        "limit_exceeded",
        `at most ${this.settings.maxPerUser} webhooks may be registered per user; delete one first`,
        { details: { limit: this.settings.maxPerUser } },
      );
    const id = newId("whk");
    const secret = `whsec_${randomBytes(32).toString("base64url")}`;
    await this.vault.refresh();
    const webhook: WebhookRecord = {
      id,
      userId,
      url: url.toString(),
      events: [...new Set(input.events ?? WEBHOOK_EVENTS)],
      sealedSecret: this.vault.seal(secret, webhookSecretOwner(userId, id)),
      createdAt: this.now(),
    };
    await this.store.webhooks.insert(webhook);
    return { webhook, secret };
  }

  list(userId: string): Promise<WebhookRecord[]> {
    return this.store.webhooks.listForUser(userId);
  }

  async remove(userId: string, id: string): Promise<void> {
    if (!(await this.store.webhooks.delete(userId, id)))
      throw new PolydevError("not_found", `webhook ${id} does not exist`);
  }

  async deliveries(userId: string, id: string, limit: number): Promise<WebhookDeliveryRecord[]> {
    const webhook = await this.store.webhooks.get(id);
    if (!webhook || webhook.userId !== userId)
      throw new PolydevError("not_found", `webhook ${id} does not exist`);
    return this.store.webhooks.deliveries(id, limit);
  }

  /**
   * A run reached its final state (called once its end time is written): queues `run.*` and,
   * when it was its group's last, `group.*` deliveries. Never throws; a failure is logged.
   */
  runEnded(run: RunRecord): void {
    this.queueForRun(run).catch((error: unknown) =>
      this.log.warn({ err: error, runId: run.id }, "webhook deliveries for a run could not be queued"),
    );
  }

  private async queueForRun(run: RunRecord): Promise<void> {
    const webhooks = await this.store.webhooks.listForUser(run.userId);
    if (webhooks.length === 0) return;
    const events: { event: WebhookEvent; key: string; data: Record<string, unknown> }[] = [];
    const runData = {
      runId: run.id,
      groupId: run.groupId,
      sandboxId: run.sandboxId,
      agent: run.agent,
      model: run.model,
      state: run.state,
      exitReason: run.exitReason,
      inputTokens: run.inputTokens,
      outputTokens: run.outputTokens,
      startedAt: run.startedAt === null ? null : iso(run.startedAt),
      endedAt: run.endedAt === null ? null : iso(run.endedAt),
    };
    events.push({ event: "run.finished", key: `run:${run.id}`, data: runData });
    if (FAILED_STATES.includes(run.state))
      events.push({ event: "run.failed", key: `run:${run.id}`, data: runData });
    if (run.groupId !== null) {
      const group = await this.store.runs.listByGroup(run.groupId);
      // Each run's end is reported after it is written, so the last one to end sees all ended.
      const ended = group.every(
        (r) => (FINAL_RUN_STATES as readonly string[]).includes(r.state) && r.endedAt !== null,
      );
      if (ended) {
        const failed = group.some((r) => FAILED_STATES.includes(r.state));
        const groupData = {
          groupId: run.groupId,
          state: failed ? "failed" : "succeeded",
          runs: group.map((r) => ({ runId: r.id, agent: r.agent, state: r.state, exitReason: r.exitReason })),
        };
        events.push({ event: "group.finished", key: `group:${run.groupId}`, data: groupData });
        if (failed) events.push({ event: "group.failed", key: `group:${run.groupId}`, data: groupData });
      }
    }
    let queued = 0;
    for (const webhook of webhooks) {
      for (const { event, key, data } of events) {
        if (!webhook.events.includes(event)) continue;
        const id = newId("whd");
        const at = this.now();
        const payload = JSON.stringify({ id, type: event, createdAt: iso(at), data });
        const added = await this.store.webhooks.enqueue({
          id,
          webhookId: webhook.id,
          userId: webhook.userId,
          event,
          eventKey: `${event}:${key}`,
          payload,
          state: "pending",
          attempts: 0,
          nextAttemptAt: at,
          lastStatus: null,
          lastError: null,
          createdAt: at,
          updatedAt: at,
        });
        if (added) queued += 1;
      }
    }
    if (queued > 0) this.kick();
  }

  /** One pass of the delivery job: every due delivery sent once, its outcome recorded. */
  async deliverDue(signal: AbortSignal): Promise<number> {
    let sent = 0;
    for (;;) {
      if (signal.aborted) return sent;
      const due = await this.store.webhooks.due(this.now(), BATCH);
      if (due.length === 0) break;
      const queue = [...due];
      await Promise.all(
        Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
          for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
            if (signal.aborted) return;
            await this.attempt(next, signal);
            sent += 1;
          }
        }),
      );
      if (due.length < BATCH) break;
    }
    await this.store.webhooks.pruneFinished(this.now() - this.settings.retentionDays * DAY_MS);
    return sent;
  }

  private async attempt(delivery: WebhookDeliveryRecord, signal: AbortSignal): Promise<void> {
    const webhook = await this.store.webhooks.get(delivery.webhookId);
    if (!webhook) return;
    let result: { status: number | null; ok: boolean; error: string | null };
    try {
      if (!this.vault.hasKey(this.vault.keyIdOf(webhook.sealedSecret))) await this.vault.refresh();
      const secret = this.vault.open(webhook.sealedSecret, webhookSecretOwner(webhook.userId, webhook.id));
      const t = Math.floor(this.now() / 1000);
      result = await sendWebhook({
        url: webhook.url,
        body: delivery.payload,
        headers: {
          [SIGNATURE_HEADER]: signatureHeader(secret, delivery.payload, t),
          "polydev-event": delivery.event,
          "polydev-delivery": delivery.id,
        },
        dispatcher: this.dispatcher,
        timeoutMs: this.settings.timeoutMs,
        signal,
      });
    } catch (error) {
      // The secret could not be opened (its master key is gone): no attempt can ever succeed.
      result = { status: null, ok: false, error: error instanceof Error ? error.message : String(error) };
    }
    if (signal.aborted && !result.ok) return; // stopped mid-send: the attempt does not count
    const attempts = delivery.attempts + 1;
    const last = attempts >= this.settings.maxAttempts;
    const at = this.now();
    const recorded = await this.store.webhooks.recordAttempt(delivery.id, {
      state: result.ok ? "delivered" : last ? "failed" : "pending",
      attempts,
      nextAttemptAt: result.ok || last ? null : at + retryDelayMs(this.settings, attempts),
      lastStatus: result.status,
      lastError: result.error,
      updatedAt: at,
    });
    if (!result.ok)
      this.log.info(
        { webhookId: webhook.id, deliveryId: delivery.id, attempts, recorded, status: result.status },
        "a webhook delivery failed",
      );
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
