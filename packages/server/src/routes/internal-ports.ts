/**
 * The other end of services/remote-ports.ts: a sandbox port as a WebSocket of raw bytes, for the
 * preview origin of another replica. Internal only: a request without a valid cluster signature
 * (a client's, even an admin's) is answered 404, as if the route did not exist, so no client gets
 * a raw tunnel into a sandbox this way. Ownership, state and the sandbox's preview connection
 * limit are checked, and the port connected, before the upgrade, so a refusal is a plain error.
 */
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream";
import { PolydevError } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { createWebSocketStream, type WebSocket } from "ws";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { resourceId } from "../http/schemas.js";
import { parsePort } from "../services/preview-service.js";

declare module "fastify" {
  interface FastifyRequest {
    portStream?: { upstream: Duplex; release: () => void } | undefined;
  }
}

export function internalPortRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);
  instance.decorateRequest("portStream", undefined);
  app.route({
    method: "GET",
    url: "/v1/internal/sandboxes/:id/ports/:port/stream",
    config: { webSocket: true },
    schema: {
      hide: true,
      params: z.object({ id: resourceId, port: z.string().max(5) }),
    },
    preHandler: async (request) => {
      if (request.forwardedBy === undefined)
        throw new PolydevError("not_found", `no route ${request.method} ${request.url.split("?")[0]}`);
      const port = parsePort(request.params.port);
      const { sandbox, agent } = await ctx.sandboxes.agent(
        requirePrincipal(request).userId,
        request.params.id,
      );
      const release = ctx.previews.acquire(sandbox.id);
      const opened = new AbortController();
      request.raw.socket.once("close", () => opened.abort());
      try {
        const upstream = await agent.forwardIn(port, opened.signal);
        ctx.sandboxes.touch(sandbox.id);
        request.portStream = { upstream, release };
        // However the upgrade ends (refused, or the stream closed), the port's connection goes.
        request.raw.socket.once("close", () => {
          upstream.destroy();
          release();
        });
      } catch (error) {
        release();
        throw error;
      }
    },
    handler: async () => {
      throw new PolydevError("upgrade_required", "this internal route is a WebSocket");
    },
    wsHandler: (socket: WebSocket, request) => {
      const opened = request.portStream;
      if (!opened) {
        socket.close(1011, "no port");
        return;
      }
      const stream = createWebSocketStream(socket);
      const done = (): void => {
        opened.upstream.destroy();
        stream.destroy();
        opened.release();
      };
      pipeline(stream, opened.upstream, done);
      pipeline(opened.upstream, stream, done);
    },
  });
}
