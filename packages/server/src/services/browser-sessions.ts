/**
 * Browser sessions behind the dashboard's cookie. The cookie holds a random token; the database
 * holds only its SHA-256 (like API keys: a 256-bit random value needs no slow hash). The CSRF
 * token is derived from the session token with an HMAC, so it needs no storage, is stable for the
 * session's life, and cannot be computed from what the database holds.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Clock, SessionRecord, Store, UserRecord } from "@polydev/core";
import { newId } from "./api-keys.js";

export const SESSION_COOKIE = "polydev_session";

/** last_seen_at only matters at idle-timeout scale (days); writing it once a minute is plenty. */
const TOUCH_EVERY_MS = 60_000;

export interface SessionLifetimes {
  idleTimeoutMs: number;
  maxAgeMs: number;
}

export interface ResolvedSession {
  session: SessionRecord;
  user: UserRecord;
  csrfToken: string;
}

export function hashSessionToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export function csrfTokenFor(token: string): string {
  return createHmac("sha256", token).update("polydev csrf v1").digest("base64url");
}

/** Constant-time: the header is attacker-controlled. */
export function csrfTokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class BrowserSessions {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    readonly lifetimes: SessionLifetimes,
  ) {}

  /** A new session for `user`; the token goes into the cookie and nowhere else. */
  async start(user: UserRecord): Promise<{ token: string; resolved: ResolvedSession }> {
    const now = this.clock.now();
    // Sign-ins are rare, so this is where rows of ended sessions are swept.
    await this.store.sessions.deleteExpired(now, now - this.lifetimes.idleTimeoutMs);
    const token = randomBytes(32).toString("base64url");
    const session = await this.store.sessions.create({
      id: newId("ses"),
      userId: user.id,
      tokenHash: hashSessionToken(token),
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.lifetimes.maxAgeMs,
    });
    return { token, resolved: { session, user, csrfToken: csrfTokenFor(token) } };
  }

  /** Undefined for an unknown, ended or expired token; an expired row is deleted on the way. */
  async resolve(token: string): Promise<ResolvedSession | undefined> {
    const found = await this.store.sessions.findByTokenHash(hashSessionToken(token));
    if (!found) return undefined;
    const now = this.clock.now();
    const { session } = found;
    if (session.expiresAt <= now || session.lastSeenAt + this.lifetimes.idleTimeoutMs <= now) {
      await this.store.sessions.delete(session.id);
      return undefined;
    }
    if (session.lastSeenAt + TOUCH_EVERY_MS < now) {
      await this.store.sessions.touch(session.id, now);
      session.lastSeenAt = now;
    }
    return { session, user: found.user, csrfToken: csrfTokenFor(token) };
  }

  async end(sessionId: string): Promise<void> {
    await this.store.sessions.delete(sessionId);
  }

  /** After a password change: every other browser of the user must sign in again. */
  async endOthers(userId: string, keepSessionId: string | undefined): Promise<void> {
    await this.store.sessions.deleteForUser(userId, keepSessionId);
  }
}
