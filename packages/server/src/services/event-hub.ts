/**
 * The user-facing event stream (GET /v1/events), carried by the Bus so any replica can serve a
 * client whatever replica published: each event goes to its owner's topic and to the admins'
 * topic, whose ids a client resumes from (`afterId`). Publishing never blocks or fails the
 * action it reports; a lost event is logged. Open streams are capped per user on this server.
 */
import type { Bus, BusSubscription } from "@polydev/core";
import { checkEventId, PolydevError } from "@polydev/core";
import type { Logger } from "pino";

export const EVENT_TYPES = ["sandbox.state", "run.finished", "login.finished", "quota.reached"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What a client receives: `data` depends on `type` (see the route's description). */
export interface StreamEvent {
  id: string;
  type: EventType;
  at: number;
  userId: string;
  data: Record<string, unknown>;
}

const ALL_TOPIC = "events.all";
const userTopic = (userId: string): string => `events.user.${userId}`;

export interface EventStreamLimits {
  maxStreamsPerUser: number;
}

export class EventHub {
  private readonly openStreams = new Map<string, number>();

  constructor(
    private readonly bus: Bus,
    private readonly limits: EventStreamLimits,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** Fire and forget: the caller's action has happened whether or not the event is delivered. */
  publish(userId: string, type: EventType, data: Record<string, unknown>): void {
    const text = JSON.stringify({ type, at: this.now(), userId, data });
    const send = async (): Promise<void> => {
      // Owner first: a user's stream never trails the admins' one for the same event.
      await this.bus.publish(userTopic(userId), text);
      await this.bus.publish(ALL_TOPIC, text);
    };
    send().catch((error: unknown) =>
      this.log.warn({ err: error, userId, type }, "an event was not published"),
    );
  }

  /** Throws `too_many_streams` when the user holds the maximum already. */
  checkRoom(userId: string): void {
    if ((this.openStreams.get(userId) ?? 0) >= this.limits.maxStreamsPerUser)
      throw new PolydevError(
        "too_many_streams",
        `at most ${this.limits.maxStreamsPerUser} event streams may be open per user; close one first`,
        { details: { limit: this.limits.maxStreamsPerUser } },
      );
  }

  /**
   * Subscribes to the user's events (or everyone's, `all`) after `afterId`; the returned
   * `release` must be called when the client goes, and frees the stream's slot.
   */
  async open(options: {
    userId: string;
    all: boolean;
    afterId: string | undefined;
    signal: AbortSignal;
  }): Promise<{ events: AsyncIterable<StreamEvent>; release: () => void }> {
    if (options.afterId !== undefined) checkEventId(options.afterId);
    this.checkRoom(options.userId);
    this.openStreams.set(options.userId, (this.openStreams.get(options.userId) ?? 0) + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const left = (this.openStreams.get(options.userId) ?? 1) - 1;
      if (left <= 0) this.openStreams.delete(options.userId);
      else this.openStreams.set(options.userId, left);
    };
    let subscription: BusSubscription;
    try {
      subscription = await this.bus.subscribe(options.all ? ALL_TOPIC : userTopic(options.userId), {
        afterId: options.afterId,
        signal: options.signal,
      });
    } catch (error) {
      release();
      throw error;
    }
    const log = this.log;
    async function* parsed(): AsyncGenerator<StreamEvent> {
      for await (const event of subscription) {
        try {
          const body = JSON.parse(event.data) as Omit<StreamEvent, "id">;
          yield { id: event.id, ...body };
        } catch (error) {
          log.warn({ err: error, eventId: event.id }, "an unreadable event was skipped");
        }
      }
    }
    return { events: parsed(), release };
  }
}
