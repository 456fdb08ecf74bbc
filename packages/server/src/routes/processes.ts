import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StringDecoder } from "node:string_decoder";
import type { FastifyInstance, FastifyReply } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { presentProcess, toArgv } from "../http/present.js";
import { processSchema, resourceId, sandboxIdParams, signalBody, startProcessBody } from "../http/schemas.js";
import { serveSse } from "../http/serve-sse.js";
import { wantsEventStream } from "../http/sse.js";

const tags = ["processes"];
const processParams = sandboxIdParams.extend({
  pid: resourceId.describe("a background process id (proc_…)"),
});

export function processRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/sandboxes/:id/processes",
    {
      schema: {
        tags,
        summary: "Start a background process; its output is kept and can be reattached to",
        params: sandboxIdParams,
        body: startProcessBody,
        response: { 201: processSchema },
      },
    },
    async (request, reply) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      const info = await agent.startBackground({
        argv: toArgv(request.body.cmd),
        ...(request.body.cwd === undefined ? {} : { cwd: request.body.cwd }),
        ...(request.body.env === undefined ? {} : { env: request.body.env }),
        ...(request.body.user === undefined ? {} : { user: request.body.user }),
      });
      return reply.status(201).send(presentProcess(info));
    },
  );

  app.get(
    "/v1/sandboxes/:id/processes",
    {
      schema: {
        tags,
        summary: "List background processes",
        params: sandboxIdParams,
        response: { 200: z.object({ items: z.array(processSchema) }) },
      },
    },
    async (request) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      return { items: (await agent.listBackground()).map(presentProcess) };
    },
  );

  app.get(
    "/v1/sandboxes/:id/processes/:pid",
    {
      schema: {
        tags,
        summary: "Get a background process",
        params: processParams,
        response: { 200: processSchema },
      },
    },
    async (request) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      return presentProcess(await agent.getBackground(request.params.pid));
    },
  );

  app.get(
    "/v1/sandboxes/:id/processes/:pid/output",
    {
      schema: {
        tags,
        summary:
          "Reattach to a process's combined output from a byte offset; raw bytes, or `output`/`exit` events with Accept: text/event-stream. A followed raw stream that fails midway (the sandbox stopped) ends without its last chunk; an event stream ends with an `error` event",
        params: processParams,
        querystring: z.strictObject({
          offset: z.coerce
            .number({ error: "offset must be a byte offset (a whole number ≥ 0)" })
            .int("offset must be a whole number of bytes")
            .min(0, "offset must be ≥ 0")
            .max(Number.MAX_SAFE_INTEGER, `offset must be at most ${Number.MAX_SAFE_INTEGER}`)
            .default(0),
          follow: z
            .enum(["true", "false"])
            .default("false")
            .transform((v) => v === "true"),
        }),
      },
    },
    async (request, reply) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      const controller = new AbortController();
      reply.raw.once("close", () => controller.abort());
      const output = await agent.attachBackground(request.params.pid, {
        fromOffset: request.query.offset,
        follow: request.query.follow,
        signal: controller.signal,
      });
      if (!wantsEventStream(request)) {
        if (!request.query.follow) {
          return reply.header("content-type", "application/octet-stream").send(output);
        }
        return followRaw(reply, output);
      }
      return serveSse(request, reply, async (sse) => {
        sse.signal.addEventListener("abort", () => output.destroy(), { once: true });
        const decoder = new StringDecoder("utf8");
        let offset = request.query.offset;
        for await (const chunk of output) {
          const buffer = chunk as Buffer;
          offset += buffer.length;
          await sse.send("output", { data: decoder.write(buffer) }, offset);
        }
        const info = await agent.getBackground(request.params.pid);
        if (info.state === "exited") await sse.send("exit", presentProcess(info), offset);
      });
    },
  );

  app.post(
    "/v1/sandboxes/:id/processes/:pid/signal",
    {
      schema: {
        tags,
        summary: "Send a signal to a background process (default SIGTERM)",
        params: processParams,
        body: signalBody.default({ signal: "SIGTERM" }),
        response: { 200: processSchema },
      },
    },
    async (request) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      await agent.signalBackground(request.params.pid, request.body.signal);
      return presentProcess(await agent.getBackground(request.params.pid));
    },
  );
}

/**
 * A followed process may stay silent for as long as it likes: the status line goes out at once
 * (not with the first byte), then the output as it comes. Bytes have no way to say "failed", so a
 * stream cut short (the sandbox stopped) ends without its final chunk, which every HTTP client
 * reports as an error rather than a complete body.
 */
function followRaw(reply: FastifyReply, output: Readable): FastifyReply {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    "content-type": "application/octet-stream",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
  });
  raw.flushHeaders();
  pipeline(output, raw).catch(() => {
    if (!raw.destroyed) raw.destroy();
  });
  return reply;
}
