/** Builds the Fastify application from ready services; no I/O happens here. */
import fastifyCookie from "@fastify/cookie";
import fastifySwagger from "@fastify/swagger";
import fastifyWebsocket from "@fastify/websocket";
import { PolydevError } from "@polydev/core";
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import Fastify from "fastify";
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from "fastify-type-provider-zod";
import { registerAuth } from "./http/auth.js";
import { clientErrorHandler, registerProtocolChecks } from "./http/client-errors.js";
import type { ServerContext } from "./http/context.js";
import { registerErrorHandler } from "./http/error-handler.js";
import { registerForwarding } from "./http/forwarding.js";
import { registerUnreadBodyGuard } from "./http/unread-body.js";
import { adminRoutes } from "./routes/admin.js";
import { adminAuditRoutes } from "./routes/admin-audit.js";
import { adminJobRoutes } from "./routes/admin-jobs.js";
import { adminOverviewRoutes } from "./routes/admin-overview.js";
import { adminSandboxRoutes } from "./routes/admin-sandboxes.js";
import { apiKeyRoutes } from "./routes/api-keys.js";
import { apiReferenceRoutes } from "./routes/api-reference.js";
import { authSessionRoutes } from "./routes/auth-session.js";
import { credentialRoutes } from "./routes/credentials.js";
import { eventRoutes } from "./routes/events.js";
import { execRoutes } from "./routes/exec.js";
import { fileRoutes } from "./routes/files.js";
import { healthRoutes } from "./routes/health.js";
import { imageRoutes } from "./routes/images.js";
import { internalPortRoutes } from "./routes/internal-ports.js";
import { loginRoutes } from "./routes/logins.js";
import { mcpServerRoutes } from "./routes/mcp-servers.js";
import { metricsRoutes } from "./routes/metrics.js";
import { networkRoutes } from "./routes/network.js";
import { planRoutes } from "./routes/plans.js";
import { portRoutes } from "./routes/ports.js";
import { processRoutes } from "./routes/processes.js";
import { projectRoutes } from "./routes/projects.js";
import { ptyRoutes } from "./routes/pty.js";
import { runMessageRoutes } from "./routes/run-messages.js";
import { changesRoutes, runRoutes } from "./routes/runs.js";
import { keepRoutes } from "./routes/runs-keep.js";
import { sandboxRoutes } from "./routes/sandboxes.js";
import { webRoutes } from "./routes/web.js";
import { webhookRoutes } from "./routes/webhooks.js";

export const API_VERSION = "0.1.0";

export async function buildApp(ctx: ServerContext): Promise<FastifyInstance> {
  const app = Fastify({
    // Typed as Fastify's base logger so routes stay plain `FastifyInstance`s.
    loggerInstance: ctx.log as FastifyBaseLogger,
    requestIdHeader: "x-request-id",
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: true,
    // Node would answer a missing Host itself, with an empty 400: the check is ours instead.
    http: { requireHostHeader: false },
    // Ids are validated by their schemas, which say what is wrong; past this length the router
    // would only answer "no route".
    routerOptions: { maxParamLength: 1024 },
    ajv: { customOptions: { removeAdditional: false } },
    // A URL Fastify cannot route (bad percent-encoding) answers in our error shape too.
    frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
      const known = new PolydevError("invalid_request", `the request URL is not valid: ${error.message}`);
      return reply.status(known.status).send(known.toJSON());
    },
    // What Node's parser refuses (bad request line, headers too large, timeouts) too.
    clientErrorHandler: clientErrorHandler(ctx.log),
  });
  // Many clients send `content-type: application/json` on every call; an empty body then means
  // "no body" (a DELETE, a POST without options) rather than a 400.
  // Parsed as Fastify's own parser does (secure-json-parse), which refuses `__proto__` and
  // `constructor.prototype` keys: whatever later copies the body can then not change prototypes.
  const secureJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (text.trim() === "") return done(null, undefined);
    secureJson(request, text, (error, parsed) => {
      if (!error) return done(null, parsed);
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      done(
        new PolydevError(
          "invalid_request",
          valid
            ? "the body must not contain __proto__ or constructor.prototype keys"
            : "the body is not valid JSON",
        ),
        undefined,
      );
    });
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandler(app);
  registerUnreadBodyGuard(app);
  // Both registered (and awaited) before the auth hook, whose onRequest must run after theirs:
  // the cookie plugin parses `request.cookies`, and the WebSocket plugin marks upgrade requests so
  // that a refused upgrade's socket is closed after the error answer (else it leaks and close hangs).
  await app.register(fastifyCookie);
  await app.register(fastifyWebsocket, { options: { maxPayload: 4 * 1024 * 1024 } });
  registerProtocolChecks(app);
  registerAuth(app, ctx, { verifier: ctx.oidc, users: ctx.oidcUsers });
  // A plan's requests per minute, per API key; admins are never throttled (they fix the plans).
  // A forwarded request was counted by the replica the client reached.
  app.addHook("onRequest", async (request) => {
    const principal = request.principal;
    if (principal && principal.role !== "admin" && request.forwardedBy === undefined)
      await ctx.quotas.admitRequest(principal.userId, principal.keyId);
  });
  // After authentication and the rate limit: the owner trusts the principal found here.
  if (ctx.nodes) {
    registerForwarding(app, {
      registry: ctx.nodes,
      store: ctx.store,
      clock: ctx.clock,
      log: ctx.log.child({ component: "forwarding" }),
      clusterSecret: ctx.config.clusterSecret,
      defaults: { driver: ctx.config.driver, memoryMb: ctx.config.sandboxDefaults.memoryMb },
    });
  }
  // By route pattern only (`/v1/sandboxes/:id`), so the label set stays bounded whatever URLs come.
  app.addHook("onResponse", async (request, reply) => {
    ctx.metrics.httpRequest(
      request.method,
      request.routeOptions.url ?? "unmatched",
      reply.statusCode,
      reply.elapsedTime,
    );
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "Polydev API", version: API_VERSION, description: "Sandboxes for AI coding agents" },
      components: {
        securitySchemes: {
          apiKey: { type: "http", scheme: "bearer" },
          session: { type: "apiKey", in: "cookie", name: "polydev_session" },
        },
      },
      security: [{ apiKey: [] }, { session: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });

  healthRoutes(app, ctx);
  authSessionRoutes(app, ctx);
  adminRoutes(app, ctx);
  apiKeyRoutes(app, ctx);
  adminAuditRoutes(app, ctx);
  adminJobRoutes(app, ctx);
  networkRoutes(app, ctx);
  metricsRoutes(app, ctx);
  adminOverviewRoutes(app, ctx);
  adminSandboxRoutes(app, ctx);
  sandboxRoutes(app, ctx);
  execRoutes(app, ctx);
  processRoutes(app, ctx);
  fileRoutes(app, ctx);
  ptyRoutes(app, ctx);
  credentialRoutes(app, ctx);
  loginRoutes(app, ctx);
  runRoutes(app, ctx);
  runMessageRoutes(app, ctx);
  projectRoutes(app, ctx);
  changesRoutes(app, ctx);
  keepRoutes(app, ctx);
  eventRoutes(app, ctx);
  planRoutes(app, ctx);
  imageRoutes(app, ctx);
  webhookRoutes(app, ctx);
  mcpServerRoutes(app, ctx);
  portRoutes(app, ctx);
  internalPortRoutes(app, ctx);
  app.get("/v1/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  await webRoutes(app, ctx);
  // After the web routes: it serves files with the reply.sendFile they register.
  apiReferenceRoutes(app);
  return app;
}
