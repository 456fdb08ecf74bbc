/**
 * Turns a verified issuer token into a Polydev user: the account (issuer, subject) is linked to
 * one user on first sign-in, never matched by a claim the person controls (email, name). A name
 * claim only suggests the new user's name. When the issuer is configured with a role claim, the
 * role follows it at every sign-in.
 */
import { randomBytes } from "node:crypto";
import type { Clock, Store, UserRecord, UserRole } from "@polydev/core";
import { isPolydevError } from "@polydev/core";
import type { OidcIssuerConfig } from "../oidc-config.js";
import { newId } from "./api-keys.js";
import type { AuditLog } from "./audit-log.js";
import { claimAt, type VerifiedToken } from "./oidc-verifier.js";

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{1,62}$/;

/** A user name from a claim: lowercased, other characters to '-', cut to fit. */
export function userNameFrom(suggested: unknown, subject: string): string {
  const raw = typeof suggested === "string" && suggested.length > 0 ? suggested : `oidc-${subject}`;
  const cleaned = raw
    .toLowerCase()
    .replace(/@.*$/, "")
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 50);
  return NAME_PATTERN.test(cleaned) ? cleaned : `user-${randomBytes(4).toString("hex")}`;
}

export function roleFromClaims(issuer: OidcIssuerConfig, token: VerifiedToken): UserRole | undefined {
  if (issuer.roleClaim === undefined) return undefined;
  const value = claimAt(token.claims, issuer.roleClaim);
  const values = Array.isArray(value) ? value : [value];
  return values.includes(issuer.adminValue) ? "admin" : "user";
}

export class OidcUsers {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly audit: AuditLog,
  ) {}

  async userFor(token: VerifiedToken, ip: string): Promise<UserRecord> {
    const { issuer, subject } = token;
    const role = roleFromClaims(issuer, token);
    let user = await this.store.identities.find(issuer.issuer, subject);
    if (!user) user = await this.provision(token, role ?? "user", ip);
    if (role !== undefined && role !== user.role) {
      await this.store.users.setRole(user.id, role);
      await this.audit.record({
        action: "user.role_change",
        target: { type: "user", id: user.id },
        ip,
        details: { from: user.role, to: role, via: "oidc", issuer: issuer.issuer },
      });
      user = { ...user, role };
    }
    return user;
  }

  private async provision(token: VerifiedToken, role: UserRole, ip: string): Promise<UserRecord> {
    const { issuer, subject } = token;
    const base = userNameFrom(claimAt(token.claims, issuer.nameClaim), subject);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      // A taken name gets a random suffix: names are for people, (issuer, subject) is the link.
      const name = attempt === 0 ? base : `${base.slice(0, 50)}-${randomBytes(3).toString("hex")}`;
      const now = this.clock.now();
      try {
        const user = await this.store.transaction(async (tx) => {
          const created = await tx.users.create({
            id: newId("usr"),
            name,
            role,
            passwordHash: null,
            createdAt: now,
          });
          await tx.identities.link({ issuer: issuer.issuer, subject, userId: created.id, createdAt: now });
          return created;
        });
        await this.audit.record({
          action: "oidc.provision",
          actor: { userId: user.id, userName: user.name },
          target: { type: "user", id: user.id },
          ip,
          details: { issuer: issuer.issuer, subject, role },
        });
        return user;
      } catch (error) {
        if (!isPolydevError(error) || error.code !== "conflict") throw error;
        // The same account signing in twice at once: the other request linked it.
        const linked = await this.store.identities.find(issuer.issuer, subject);
        if (linked) return linked;
      }
    }
    throw new Error(`could not find a free user name for ${base}`);
  }
}
