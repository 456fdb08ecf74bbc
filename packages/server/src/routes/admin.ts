import { PolydevError } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { isUpstreamProxyUrl } from "../config.js";
import { requireAdmin, requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { idParams } from "../http/schemas.js";
import { hashPassword } from "../services/passwords.js";
import { createUserWithKey } from "../services/users.js";
import { newPasswordSchema } from "./auth-session.js";

const userSchema = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(["admin", "user"]),
  createdAt: z.string(),
});

export function adminRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/admin/users",
    {
      schema: {
        tags: ["admin"],
        summary: "Create a user, its first API key (shown once) and optionally a dashboard password",
        body: z.strictObject({
          name: z
            .string()
            .regex(
              /^[a-z0-9][a-z0-9._-]{1,62}$/,
              "names are 2–63 lowercase letters, digits, '.', '_' or '-'",
            ),
          role: z.enum(["admin", "user"]).default("user"),
          password: newPasswordSchema
            .optional()
            .describe("dashboard password; without one the user signs in with an API key"),
        }),
        response: { 201: z.object({ user: userSchema, apiKey: z.string() }) },
      },
    },
    async (request, reply) => {
      const admin = requireAdmin(request);
      const { user, apiKey } = await createUserWithKey(
        ctx.store,
        request.body.name,
        request.body.role,
        ctx.clock.now(),
        {
          passwordHash:
            request.body.password === undefined ? undefined : await hashPassword(request.body.password),
        },
      );
      await ctx.audit.record({
        action: "user.create",
        actor: admin,
        target: { type: "user", id: user.id },
        ip: request.ip,
        details: { name: user.name, role: user.role, password: request.body.password !== undefined },
      });
      return reply
        .status(201)
        .send({ user: { ...user, createdAt: new Date(user.createdAt).toISOString() }, apiKey });
    },
  );

  app.get(
    "/v1/admin/users",
    {
      schema: {
        tags: ["admin"],
        summary: "List users",
        response: { 200: z.object({ items: z.array(userSchema) }) },
      },
    },
    async (request) => {
      requireAdmin(request);
      const users = await ctx.store.users.list();
      return {
        items: users.map((u) => ({
          id: u.id,
          name: u.name,
          role: u.role,
          createdAt: new Date(u.createdAt).toISOString(),
        })),
      };
    },
  );

  app.get(
    "/v1/me",
    {
      schema: {
        tags: ["users"],
        summary: "Who this API key belongs to, and the proxy (if any) your provider traffic goes through",
        response: {
          200: z.object({
            id: z.string(),
            name: z.string(),
            role: z.enum(["admin", "user"]),
            egressProxy: z.string().nullable(),
          }),
        },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const egressProxy =
        (await ctx.store.users.getEgressProxy(principal.userId)) ?? ctx.config.upstreamProxy ?? null;
      return { id: principal.userId, name: principal.userName, role: principal.role, egressProxy };
    },
  );

  app.put(
    "/v1/admin/users/:id/proxy",
    {
      schema: {
        tags: ["admin"],
        summary: "Pin an HTTP(S) proxy to a user's provider traffic (null: the server's default)",
        params: idParams,
        body: z.strictObject({
          // What the egress side can use (parseUpstreamProxy), checked here: a value it refuses
          // would be stored and then fail every sandbox create of that user with a 502.
          proxyUrl: z
            .string()
            .max(2048)
            .refine(isUpstreamProxyUrl, {
              error:
                "proxyUrl must be a URL like http://[user:password@]proxy.example:3128 (http, no path), or null",
            })
            .nullable(),
        }),
        response: { 200: z.object({ id: z.string(), egressProxy: z.string().nullable() }) },
      },
    },
    async (request) => {
      requireAdmin(request);
      const user = await ctx.store.users.getById(request.params.id);
      if (!user) throw new PolydevError("not_found", `user ${request.params.id} does not exist`);
      await ctx.store.users.setEgressProxy(user.id, request.body.proxyUrl);
      return { id: user.id, egressProxy: request.body.proxyUrl };
    },
  );
}
