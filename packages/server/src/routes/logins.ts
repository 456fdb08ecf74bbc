import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { idParams, resourceId } from "../http/schemas.js";
import { serveSse } from "../http/serve-sse.js";
import { LOGIN_PROVIDERS } from "../services/login-flows.js";
import { LOGIN_STATES } from "../services/login-service.js";

const tags = ["logins"];
const loginSchema = z
  .object({
    id: z.string(),
    provider: z.enum(LOGIN_PROVIDERS),
    sandboxId: z.string(),
    state: z.enum(LOGIN_STATES),
    url: z.string().nullable().describe("open this in your own browser"),
    userCode: z.string().nullable().describe("the code to enter on the provider's device page, if any"),
    finish: z.enum(["code", "callback"]).describe("what to send back: { code } or { callbackUrl }"),
    reason: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Login" });

export function loginRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/logins",
    {
      schema: {
        tags,
        summary:
          "Start a provider's own CLI login inside your sandbox; answers once the sign-in URL is known",
        body: z.strictObject({
          provider: z.enum(LOGIN_PROVIDERS, {
            error: `provider must be one of ${LOGIN_PROVIDERS.join(", ")}`,
          }),
          sandboxId: resourceId.optional().describe("default: a new sandbox with egress, removed afterwards"),
        }),
        response: { 201: loginSchema },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      let sandboxId = request.body.sandboxId;
      const ownsSandbox = sandboxId === undefined;
      if (!sandboxId) {
        sandboxId = (
          await ctx.sandboxes.create(principal.userId, { network: "egress", metadata: { purpose: "login" } })
        ).id;
      }
      try {
        const { agent } = await ctx.sandboxes.agent(principal.userId, sandboxId);
        const view = await ctx.logins.start(principal.userId, request.body.provider, {
          id: sandboxId,
          agent,
          ownsSandbox,
        });
        return reply.status(201).send(view);
      } catch (error) {
        // Refused before the login took it on (one already in progress): the sandbox made for it goes.
        if (ownsSandbox)
          await ctx.sandboxes.destroy(principal.userId, sandboxId).catch((cause: unknown) => {
            request.log.warn({ err: cause, sandboxId }, "could not remove a refused login's sandbox");
          });
        throw error;
      }
    },
  );

  app.get(
    "/v1/logins",
    {
      schema: {
        tags,
        summary:
          "Your logins, newest first (the last 100). With replicas, url and userCode are shown only by the server running the login; GET /v1/logins/:id always has them",
        response: { 200: z.object({ items: z.array(loginSchema) }) },
      },
    },
    async (request) => ({ items: await ctx.logins.list(requirePrincipal(request).userId) }),
  );

  app.get(
    "/v1/logins/:id",
    { schema: { tags, summary: "A login's state", params: idParams, response: { 200: loginSchema } } },
    async (request) => ctx.logins.get(requirePrincipal(request).userId, request.params.id),
  );

  app.get(
    "/v1/logins/:id/events",
    { schema: { tags, summary: "State changes as server-sent `state` events", params: idParams } },
    async (request, reply) => {
      const userId = requirePrincipal(request).userId;
      await ctx.logins.check(userId, request.params.id);
      return serveSse(request, reply, async (sse) => {
        for await (const view of ctx.logins.events(userId, request.params.id, sse.signal)) {
          await sse.send("state", view);
        }
      });
    },
  );

  app.post(
    "/v1/logins/:id/code",
    {
      schema: {
        tags,
        summary: "Finish a login: the code the provider showed, or the localhost URL the browser ended on",
        params: idParams,
        body: z
          .strictObject({
            code: z
              .string()
              .min(1)
              .max(4096)
              .regex(/^[^\r\n]+$/, "code must be one line")
              .optional(),
            callbackUrl: z.string().min(1).max(8192).optional(),
          })
          .refine(
            (b) => (b.code === undefined) !== (b.callbackUrl === undefined),
            "send exactly one of code or callbackUrl",
          ),
        response: { 200: loginSchema },
      },
    },
    async (request) => ctx.logins.submit(requirePrincipal(request).userId, request.params.id, request.body),
  );

  app.delete(
    "/v1/logins/:id",
    { schema: { tags, summary: "Cancel a login", params: idParams, response: { 200: loginSchema } } },
    async (request) => ctx.logins.cancel(requirePrincipal(request).userId, request.params.id),
  );
}
