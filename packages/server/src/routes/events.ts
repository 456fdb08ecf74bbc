/**
 * GET /v1/events: the caller's events as Server-Sent Events, or as a WebSocket on the same
 * route (upgrade). Each event has an id; a client that reconnects with `Last-Event-ID` (or
 * `?after=`) gets what it missed while the bus retains it. A client that leaves more than
 * `events.maxBufferedBytes` unread in its connection is disconnected instead of buffered:
 * it reconnects and resumes.
 */
import type { ServerResponse } from "node:http";
import { PolydevError } from "@polydev/core";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { WebSocket } from "ws";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { errorSchema } from "../http/schemas.js";
import type { StreamEvent } from "../services/event-hub.js";

const KEEP_ALIVE_MS = 15_000;

const eventsQuery = z.strictObject({
  all: z
    .enum(["0", "1", "true", "false"])
    .optional()
    .describe("admins: 1 streams every user's events (default: the caller's own)"),
  after: z
    .string()
    .regex(/^\d{1,16}-\d{1,16}$/, 'after is an event id, "<milliseconds>-<sequence>"')
    .optional()
    .describe("resume after this event id (as the Last-Event-ID header does)"),
});

const DESCRIPTION = [
  "The caller's events, as `text/event-stream` or, with a WebSocket upgrade on the same URL, one JSON text frame per event.",
  "Every event is `{id, type, at, userId, data}`: `sandbox.state` (`data: {sandboxId, name, state, previous, reason}`; reason set when failed),",
  "`run.finished` (`{runId, sandboxId, agent, state, exitReason}`), `login.finished` (`{loginId, provider, state, reason}`),",
  "`quota.reached` (`{limit, used, max}`). SSE events carry the id (`id:`) and the type (`event:`).",
  "Resume with `Last-Event-ID` or `?after=<id>`; an id older than what is retained resumes at the oldest retained event.",
  "A client that reads too slowly is disconnected (resume then); each user may hold a limited number of streams (429 `too_many_streams`).",
].join(" ");

export function eventRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);
  const maxBuffered = ctx.config.events.maxBufferedBytes;

  /** Checked before the answer starts, so a refusal is a plain 4xx (even before an upgrade). */
  const resolve = (request: FastifyRequest, query: z.infer<typeof eventsQuery>) => {
    const principal = requirePrincipal(request);
    const all = query.all === "1" || query.all === "true";
    if (all && principal.role !== "admin")
      throw new PolydevError("forbidden", "only admins may stream every user's events (all=1)");
    const header = request.headers["last-event-id"];
    const afterId = query.after ?? (typeof header === "string" && header !== "" ? header : undefined);
    if (afterId !== undefined && !/^\d{1,16}-\d{1,16}$/.test(afterId))
      throw new PolydevError("invalid_request", 'Last-Event-ID is an event id, "<milliseconds>-<sequence>"');
    return { userId: principal.userId, all, afterId };
  };

  app.route({
    method: "GET",
    url: "/v1/events",
    config: { webSocket: true },
    schema: {
      tags: ["events"],
      summary: "Stream the caller's events (SSE, or WebSocket on upgrade)",
      description: DESCRIPTION,
      querystring: eventsQuery,
      response: {
        200: z.string().describe("text/event-stream"),
        429: errorSchema.describe("the user holds as many streams as allowed"),
      },
    },
    preHandler: async (request) => {
      ctx.events.checkRoom(resolve(request, request.query).userId);
    },
    handler: async (request, reply) => {
      const target = resolve(request, request.query);
      const controller = new AbortController();
      const opened = await ctx.events.open({ ...target, signal: controller.signal });
      const closeGauge = ctx.metrics.eventStreamOpened("sse");
      const raw = reply.raw;
      reply.hijack();
      raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      raw.flushHeaders();
      const keepAlive = setInterval(() => raw.write(": keep-alive\n\n"), KEEP_ALIVE_MS);
      keepAlive.unref();
      const onClose = once(() => {
        clearInterval(keepAlive);
        controller.abort();
        opened.release();
        closeGauge();
      });
      raw.once("close", onClose);
      // A client that left while the subscription was being opened: its close event has passed.
      if (raw.destroyed || !raw.socket || raw.socket.destroyed) onClose();
      pumpEvents(
        opened.events,
        (event) => writeSse(raw, event, maxBuffered),
        () => {
          ctx.metrics.eventStreamDropped();
          raw.destroy();
        },
      ).catch((error: unknown) => {
        request.log.warn({ err: error }, "an event stream failed");
        raw.destroy();
      });
      return reply;
    },
    wsHandler: async (socket: WebSocket, request) => {
      const target = resolve(request, request.query);
      const controller = new AbortController();
      let opened: Awaited<ReturnType<typeof ctx.events.open>>;
      try {
        opened = await ctx.events.open({ ...target, signal: controller.signal });
      } catch (error) {
        // Another stream took the last slot between the check and the upgrade.
        const known = error instanceof PolydevError ? error : undefined;
        socket.close(known?.code === "too_many_streams" ? 1008 : 1011, known?.code ?? "internal");
        return;
      }
      const closeGauge = ctx.metrics.eventStreamOpened("websocket");
      const onClose = once(() => {
        controller.abort();
        opened.release();
        closeGauge();
      });
      socket.once("close", onClose);
      if (socket.readyState !== socket.OPEN) onClose();
      // Incoming frames are not part of the protocol; the library's maxPayload bounds them.
      socket.on("message", () => undefined);
      pumpEvents(
        opened.events,
        (event) => {
          socket.send(JSON.stringify(event));
          return socket.bufferedAmount <= maxBuffered;
        },
        () => {
          ctx.metrics.eventStreamDropped();
          socket.terminate();
        },
      ).catch((error: unknown) => {
        request.log.warn({ err: error }, "an event stream failed");
        socket.terminate();
      });
    },
  });
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

/** Delivers events until the stream ends; `deliver` says false when the client fell too far behind. */
async function pumpEvents(
  events: AsyncIterable<StreamEvent>,
  deliver: (event: StreamEvent) => boolean,
  tooSlow: () => void,
): Promise<void> {
  for await (const event of events) {
    if (!deliver(event)) {
      tooSlow();
      return;
    }
  }
}

function writeSse(raw: ServerResponse, event: StreamEvent, maxBuffered: number): boolean {
  if (raw.destroyed || raw.writableEnded) return true;
  raw.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  return raw.writableLength <= maxBuffered;
}
