/**
 * Dashboard sign-in: a password or an API key buys a session cookie (HttpOnly, SameSite=Strict)
 * and a CSRF token the page sends back on every unsafe request. The cookie's token never leaves
 * the Set-Cookie header; the database keeps only its hash.
 */
import type { UserRecord } from "@polydev/core";
import { isPolydevError, PolydevError } from "@polydev/core";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { checkApiKeyUsable, requirePrincipal, sameHostOrigin } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { hashApiKey } from "../services/api-keys.js";
import { SESSION_COOKIE } from "../services/browser-sessions.js";
import {
  hashPassword,
  PASSWORD_MAX_LENGTH,
  PASSWORD_MIN_LENGTH,
  verifyPassword,
} from "../services/passwords.js";

const tags = ["auth"];

export const sessionSchema = z
  .object({
    user: z.object({ id: z.string(), name: z.string(), role: z.enum(["admin", "user"]) }),
    csrfToken: z.string().describe("send it as the x-csrf-token header on every POST, PUT, PATCH and DELETE"),
  })
  .meta({ id: "Session" });

export const newPasswordSchema = z
  .string()
  .min(PASSWORD_MIN_LENGTH, `passwords are at least ${PASSWORD_MIN_LENGTH} characters`)
  .max(PASSWORD_MAX_LENGTH, `passwords are at most ${PASSWORD_MAX_LENGTH} characters`);

const signInBody = z.union([
  z.strictObject({
    name: z.string().min(1).max(200),
    password: z
      .string()
      .min(1)
      .max(PASSWORD_MAX_LENGTH * 4),
  }),
  z.strictObject({ apiKey: z.string().min(1).max(1000) }),
  z.strictObject({
    idToken: z
      .string()
      .min(1)
      .max(16 * 1024)
      .describe("a JWT of an issuer in POLYDEV_OIDC_ISSUERS (an ID or access token)"),
  }),
]);

const WRONG_CREDENTIALS = "wrong user name or password";

function presentSession(user: UserRecord, csrfToken: string) {
  return { user: { id: user.id, name: user.name, role: user.role }, csrfToken };
}

/**
 * `Secure` everywhere except plain http to a loopback address, where browsers would refuse to
 * store a Secure cookie and there is no network to protect it from.
 */
function cookieIsSecure(request: FastifyRequest): boolean {
  if (request.protocol !== "http") return true;
  const host = request.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const loopback =
    host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\./.test(host);
  return !loopback;
}

export function authSessionRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  /** Turns the throttle's refusal into a 429 with Retry-After. */
  const checkThrottle = async (
    reply: FastifyReply,
    attempt: { name?: string; ip: string },
  ): Promise<void> => {
    try {
      await ctx.signInThrottle.check(attempt);
    } catch (error) {
      if (isPolydevError(error) && typeof error.details?.retryAfterMs === "number") {
        reply.log.warn({ ip: attempt.ip, userName: attempt.name }, "sign-in throttled");
        reply.header("retry-after", String(Math.ceil(error.details.retryAfterMs / 1000)));
      }
      throw error;
    }
  };

  app.post(
    "/v1/auth/session",
    {
      schema: {
        tags,
        summary:
          "Sign in with a user name and password, an API key, or an OIDC issuer's token; sets the session cookie",
        security: [],
        body: signInBody,
        response: { 200: sessionSchema },
      },
    },
    async (request, reply) => {
      // A page of another site must not sign a visitor into an account of its choosing.
      if (request.headers.origin !== undefined && !sameHostOrigin(request)) {
        throw new PolydevError(
          "csrf_failed",
          "sign-in from a page of another site is refused (Origin must match Host)",
        );
      }
      const ip = request.ip;
      let user: UserRecord;
      let method: "api_key" | "password" | "oidc";
      const failed = async (reason: string, actorName?: string): Promise<void> => {
        request.log.warn({ ip, userName: actorName, method }, "sign-in failed");
        await ctx.audit.record({
          action: "sign_in",
          outcome: "failure",
          actorName,
          ip,
          details: { method, reason },
        });
      };
      if ("idToken" in request.body) {
        method = "oidc";
        await checkThrottle(reply, { ip });
        if (!ctx.oidc.enabled) {
          throw new PolydevError(
            "feature_unavailable",
            "no OIDC issuers are configured (POLYDEV_OIDC_ISSUERS)",
          );
        }
        try {
          user = await ctx.oidcUsers.userFor(await ctx.oidc.verify(request.body.idToken), ip);
        } catch (error) {
          if (isPolydevError(error) && error.code === "invalid_token") {
            await ctx.signInThrottle.recordFailure({ ip });
            await failed(error.message);
          }
          throw error;
        }
      } else if ("apiKey" in request.body) {
        method = "api_key";
        await checkThrottle(reply, { ip });
        const found = await ctx.store.apiKeys.findByHash(hashApiKey(request.body.apiKey));
        try {
          checkApiKeyUsable(found?.key, ctx.clock.now());
        } catch (error) {
          await ctx.signInThrottle.recordFailure({ ip });
          const message = error instanceof Error ? error.message : "the API key is not valid";
          await failed(message, found?.user.name);
          throw new PolydevError("invalid_credentials", message);
        }
        if (!found) throw new PolydevError("invalid_credentials", "the API key is not valid");
        user = found.user;
      } else {
        method = "password";
        const { name, password } = request.body;
        await checkThrottle(reply, { name, ip });
        // Names are stored lowercase; "Ada" on a phone keyboard means "ada".
        const found = await ctx.store.users.getByName(name.toLowerCase());
        // Verified even for an unknown name (against a decoy) so both answers take as long.
        const matches = await verifyPassword(password, found?.passwordHash ?? null);
        if (!found || !matches) {
          await ctx.signInThrottle.recordFailure({ name, ip });
          // The name is not a secret, and operators (or fail2ban) need it to see an attack.
          await failed(found ? "wrong password" : "unknown user name", name.slice(0, 200));
          throw new PolydevError("invalid_credentials", WRONG_CREDENTIALS);
        }
        await ctx.signInThrottle.recordSuccess(name);
        user = found;
      }
      const { token, resolved } = await ctx.sessions.start(user);
      await ctx.audit.record({
        action: "sign_in",
        actor: { userId: user.id, userName: user.name },
        target: { type: "session", id: resolved.session.id },
        ip,
        details: { method },
      });
      // The answer carries the CSRF token: no cache may keep it.
      reply.header("cache-control", "no-store");
      reply.setCookie(SESSION_COOKIE, token, {
        httpOnly: true,
        sameSite: "strict",
        path: "/",
        secure: cookieIsSecure(request),
        maxAge: Math.floor(ctx.sessions.lifetimes.maxAgeMs / 1000),
      });
      return presentSession(user, resolved.csrfToken);
    },
  );

  app.get(
    "/v1/auth/session",
    {
      schema: {
        tags,
        summary: "The signed-in user and CSRF token of the session cookie",
        response: { 200: sessionSchema },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      reply.header("cache-control", "no-store");
      if (!principal.session) {
        throw new PolydevError("unauthorized", "no session cookie: sign in with POST /v1/auth/session");
      }
      return {
        user: { id: principal.userId, name: principal.userName, role: principal.role },
        csrfToken: principal.session.csrfToken,
      };
    },
  );

  app.delete(
    "/v1/auth/session",
    {
      schema: {
        tags,
        summary: "Sign out: ends the session and expires its cookie",
        response: { 204: z.null().describe("signed out") },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      if (principal.session) {
        await ctx.sessions.end(principal.session.id);
        await ctx.audit.record({
          action: "sign_out",
          actor: principal,
          target: { type: "session", id: principal.session.id },
          ip: request.ip,
        });
      }
      reply.setCookie(SESSION_COOKIE, "", {
        httpOnly: true,
        sameSite: "strict",
        path: "/",
        secure: cookieIsSecure(request),
        maxAge: 0,
        expires: new Date(0),
      });
      return reply.status(204).send(null);
    },
  );

  app.put(
    "/v1/me/password",
    {
      schema: {
        tags: ["users"],
        summary: "Set your own dashboard password (currentPassword is required once one is set)",
        body: z.strictObject({
          currentPassword: z
            .string()
            .min(1)
            .max(PASSWORD_MAX_LENGTH * 4)
            .optional(),
          password: newPasswordSchema,
        }),
        response: { 204: z.null().describe("password changed; your other sessions are signed out") },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      const user = await ctx.store.users.getById(principal.userId);
      if (!user) throw new PolydevError("unauthorized", "this user no longer exists");
      if (user.passwordHash !== null) {
        const { currentPassword } = request.body;
        if (currentPassword === undefined) {
          throw new PolydevError("invalid_request", "send currentPassword: a password is already set");
        }
        const attempt = { name: user.name, ip: request.ip };
        await checkThrottle(reply, attempt);
        if (!(await verifyPassword(currentPassword, user.passwordHash))) {
          await ctx.signInThrottle.recordFailure(attempt);
          await ctx.audit.record({
            action: "password.change",
            outcome: "failure",
            actor: principal,
            target: { type: "user", id: user.id },
            ip: request.ip,
            details: { reason: "wrong current password" },
          });
          throw new PolydevError("invalid_credentials", "the current password is wrong");
        }
      }
      await ctx.store.users.setPasswordHash(user.id, await hashPassword(request.body.password));
      await ctx.sessions.endOthers(user.id, principal.session?.id);
      await ctx.audit.record({
        action: "password.change",
        actor: principal,
        target: { type: "user", id: user.id },
        ip: request.ip,
        details: { hadPassword: user.passwordHash !== null },
      });
      return reply.status(204).send(null);
    },
  );
}
