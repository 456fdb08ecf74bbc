/**
 * A sandbox's ports: which listen, signed preview links for browsers, and the API form of a
 * preview for programs (`…/ports/:port/…` with a bearer key).
 *
 * The API form never honours the dashboard's cookie: a sandbox's answer on the dashboard's origin
 * must not be something a browser renders as the dashboard's own page. So it needs a key (a
 * browser never sends one by itself) and every answer carries `Content-Security-Policy: sandbox`.
 */

import { PolydevError } from "@polydev/core";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { resourceId, sandboxIdParams } from "../http/schemas.js";
import { listListeningPorts } from "../services/preview-ports.js";
import type { RelayOptions } from "../services/preview-relay.js";
import { relayHttp, relayUpgrade } from "../services/preview-relay.js";
import type { PreviewService } from "../services/preview-service.js";
import { parsePort } from "../services/preview-service.js";

const tags = ["ports"];

const portParams = z.object({
  id: resourceId,
  port: z.string().regex(/^\d{1,5}$/, "port must be a TCP port number (1-65535)"),
});

const listeningPortSchema = z
  .object({
    port: z.number().int(),
    address: z.string(),
    process: z.object({ pid: z.number().int(), name: z.string() }).nullable(),
  })
  .meta({ id: "ListeningPort" });

const previewLinkBody = z
  .object({
    /** Seconds until the link expires (private: default 300, at most 900; share: default 3600). */
    expiresIn: z
      .number()
      .int()
      .min(10)
      .max(366 * 24 * 3600)
      .optional(),
    /** A share link: anyone holding it may open the preview until it expires. */
    share: z.boolean().optional(),
  })
  .strict()
  .optional();

const previewLinkSchema = z
  .object({
    url: z.string(),
    expiresAt: z.string(),
    share: z.boolean(),
  })
  .meta({ id: "PreviewLink" });

export function portRoutes(
  instance: FastifyInstance,
  ctx: ServerContext & { previews: PreviewService },
): void {
  const app = zodApp(instance);
  const { previews } = ctx;

  app.get(
    "/v1/sandboxes/:id/ports",
    {
      schema: {
        tags,
        summary: "The TCP ports listening in the sandbox (on any address), with the process when known",
        params: sandboxIdParams,
        response: { 200: z.object({ items: z.array(listeningPortSchema) }) },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const { agent } = await ctx.sandboxes.agent(principal.userId, request.params.id);
      return { items: await listListeningPorts(agent) };
    },
  );

  app.post(
    "/v1/sandboxes/:id/ports/:port/preview-link",
    {
      schema: {
        tags,
        summary:
          "A short-lived signed link opening the port in a browser, on the separate preview origin; share links may be opened by anyone holding them until they expire",
        params: portParams,
        body: previewLinkBody,
        response: { 201: previewLinkSchema },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      const port = parsePort(request.params.port);
      const body = request.body ?? {};
      const link = await previews.createLink(principal.userId, request.params.id, port, {
        expiresInMs: body.expiresIn === undefined ? undefined : body.expiresIn * 1000,
        share: body.share,
      });
      ctx.log.info(
        { sandboxId: request.params.id, port, share: link.share, userId: principal.userId },
        "preview link made",
      );
      return reply
        .status(201)
        .header("cache-control", "no-store")
        .send({ url: link.url, expiresAt: new Date(link.expiresAt).toISOString(), share: link.share });
    },
  );

  // The API form streams bodies through untouched: its own scope parses none.
  instance.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
    const route = {
      schema: { hide: true },
      // Upgrades are relayed (the protocol check refuses them on routes without this).
      config: { webSocket: true },
      // A WebSocket is relayed before Fastify's WebSocket plugin would take the upgrade over.
      preHandler: async (request: FastifyRequest, reply: FastifyReply) => {
        if (!request.ws) return;
        const { release, target, options } = await prepare(request);
        reply.hijack();
        const socket = request.raw.socket;
        socket.once("close", release);
        previews.trackUpgrade(socket);
        await relayUpgrade(request.raw, socket, Buffer.alloc(0), target, options);
      },
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const { release, target, options } = await prepare(request);
        reply.hijack();
        reply.raw.once("close", release);
        await relayHttp(request.raw, reply.raw, target, options);
      },
    };
    scope.all("/v1/sandboxes/:id/ports/:port", route);
    scope.all("/v1/sandboxes/:id/ports/:port/*", route);
  });

  async function prepare(request: FastifyRequest) {
    const principal = requirePrincipal(request);
    if (principal.session !== undefined) {
      throw new PolydevError(
        "unauthorized",
        "the API form of a preview needs 'Authorization: Bearer <api key>' (the dashboard's cookie is never honoured here); browsers open previews with a preview link",
      );
    }
    const params = request.params as { id?: string; port?: string };
    const id = resourceId.safeParse(params.id);
    if (!id.success) throw new PolydevError("invalid_request", "ids are 1–64 letters, digits, '_' or '-'");
    const port = parsePort(params.port ?? "");
    // The sandbox's path is what follows `/v1/sandboxes/<id>/ports/<port>` in the raw URL, as sent.
    const raw = request.raw.url ?? "/";
    const queryAt = raw.indexOf("?");
    const pathPart = queryAt === -1 ? raw : raw.slice(0, queryAt);
    const segments = pathPart.split("/");
    const rest = `/${segments.slice(6).join("/")}${queryAt === -1 ? "" : raw.slice(queryAt)}`;
    const prefix = segments.slice(0, 6).join("/");
    const release = previews.acquire(id.data);
    try {
      const target = await previews.target(principal.userId, id.data, port);
      const options: RelayOptions = {
        path: rest,
        prefix,
        answerHeaders: { "content-security-policy": "sandbox", "x-content-type-options": "nosniff" },
        answerTimeoutMs: previews.config.answerTimeoutMs,
        maxHeaderBytes: previews.config.maxHeaderBytes,
        forwarded: { host: request.headers.host, proto: "http" },
      };
      return { release, target, options };
    } catch (error) {
      release();
      throw error;
    }
  }
}
