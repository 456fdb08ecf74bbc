import { randomUUID } from "node:crypto";
import type { AgentConnection } from "@polydev/core";
import { isPolydevError, PolydevError } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import type { WebSocket } from "ws";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { errorSchema, sandboxIdParams, userSchema } from "../http/schemas.js";
import type { PtyClient } from "../services/pty-sessions.js";

const controlMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("input"), data: z.string().max(1024 * 1024) }),
  z.object({
    type: z.literal("resize"),
    cols: z.number().int().min(1).max(1000),
    rows: z.number().int().min(1).max(1000),
  }),
  z.object({ type: z.literal("ping") }),
]);

declare module "fastify" {
  interface FastifyRequest {
    ptyAgent: AgentConnection | undefined;
    /** The sandbox's id (the path may name it by its name). */
    ptySandboxId: string | undefined;
  }
}

/**
 * Interactive terminal over WebSocket. Binary frames carry terminal bytes both ways; text frames
 * carry JSON control messages (`resize`, `input`, `ping` in; `ready`, `exit`, `error` out).
 * `reconnect` is a client-made id: the same id reattaches to the same shell.
 */
export function ptyRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);
  instance.decorateRequest("ptyAgent", undefined);
  instance.decorateRequest("ptySandboxId", undefined);
  app.route({
    method: "GET",
    url: "/v1/sandboxes/:id/pty",
    config: { webSocket: true },
    schema: {
      tags: ["pty"],
      summary: "Interactive terminal (WebSocket upgrade)",
      description:
        "Upgrade to a WebSocket (`Connection: Upgrade`, `Upgrade: websocket`). Binary frames carry terminal bytes both ways; text frames carry JSON control messages: in `{type:'resize',cols,rows}`, `{type:'input',data}`, `{type:'ping'}`; out `{type:'ready',reconnectId,reattached}`, `{type:'exit',exitCode,signal}`, `{type:'error',message}`, `{type:'pong'}`. A request without the upgrade answers 426.",
      params: sandboxIdParams,
      querystring: z.strictObject({
        cols: z.coerce.number().int().min(1).max(1000).default(80).describe("terminal width in columns"),
        rows: z.coerce.number().int().min(1).max(1000).default(24).describe("terminal height in rows"),
        user: userSchema.optional(),
        reconnect: z
          .string()
          .regex(/^[A-Za-z0-9_-]{8,64}$/, "reconnect is 8–64 letters, digits, _ or -")
          .optional()
          .describe("client-made id; connecting again with it reattaches to the same shell"),
      }),
      response: {
        101: z.null().describe("Switching Protocols: the WebSocket carrying the terminal is open"),
        426: errorSchema.describe("the request was not a WebSocket upgrade"),
      },
    },
    // Ownership and state are checked before the upgrade so a bad id answers a plain 404/409.
    preHandler: async (request) => {
      const { agent, sandbox } = await ctx.sandboxes.agent(
        requirePrincipal(request).userId,
        request.params.id,
      );
      request.ptyAgent = agent;
      request.ptySandboxId = sandbox.id;
    },
    // A plain GET (no upgrade) reaches this handler; the terminal needs the WebSocket.
    handler: async (_request, reply) => {
      reply.header("upgrade", "websocket");
      throw new PolydevError(
        "upgrade_required",
        "the terminal is a WebSocket: connect with `Connection: Upgrade` and `Upgrade: websocket` (e.g. new WebSocket(url))",
      );
    },
    wsHandler: async (socket: WebSocket, request) => {
      const principal = requirePrincipal(request);
      const agent = request.ptyAgent;
      const sandboxId = request.ptySandboxId;
      if (!agent || !sandboxId) {
        socket.close(1011, "no agent");
        return;
      }
      const { cols, rows, user } = request.query;
      const reconnectId = request.query.reconnect ?? randomUUID();
      const client: PtyClient = {
        sendData: (data) => socket.send(data, { binary: true }),
        sendControl: (message) => socket.send(JSON.stringify(message)),
        close: (code, reason) => socket.close(code, reason),
        bufferedBytes: () => socket.bufferedAmount,
      };
      let attached: Awaited<ReturnType<typeof ctx.ptys.attach>>;
      try {
        attached = await ctx.ptys.attach(
          { userId: principal.userId, sandboxId, reconnectId, cols, rows, agent, user },
          client,
        );
      } catch (error) {
        // The sandbox may have gone between the check above and here (destroyed, init killed).
        const known = isPolydevError(error) ? error : undefined;
        socket.send(
          JSON.stringify({
            type: "error",
            code: known?.code ?? "internal",
            message: known?.message ?? "the terminal failed to start",
          }),
        );
        socket.close(1011, "terminal failed to start");
        return;
      }
      const { session } = attached;
      socket.send(JSON.stringify({ type: "ready", reconnectId, reattached: attached.reattached }));
      socket.on("message", (data, isBinary) => {
        ctx.sandboxes.touch(sandboxId);
        if (isBinary) {
          session.write(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer));
          return;
        }
        const parsed = controlMessage.safeParse(safeJson(data.toString()));
        if (!parsed.success) {
          socket.send(
            JSON.stringify({
              type: "error",
              code: "invalid_request",
              message: "unknown control message; send {type:'resize'|'input'|'ping'}",
            }),
          );
          return;
        }
        const message = parsed.data;
        if (message.type === "input") session.write(message.data);
        else if (message.type === "resize") session.resize(message.cols, message.rows);
        else socket.send(JSON.stringify({ type: "pong" }));
      });
      socket.on("close", () => session.detach(client));
      socket.on("error", () => session.detach(client));
      // The client may have gone while the shell was starting: its close event has passed.
      if (socket.readyState !== socket.OPEN) session.detach(client);
    },
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
