import { StringDecoder } from "node:string_decoder";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { presentProcess, toArgv } from "../http/present.js";
import { processSchema, sandboxIdParams, signalBody, startProcessBody } from "../http/schemas.js";
import { openSse, wantsEventStream } from "../http/sse.js";

const tags = ["processes"];
const processParams = sandboxIdParams.extend({ pid: z.string().min(1).max(64) });

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
          "Reattach to a process's combined output from a byte offset; raw bytes, or `output`/`exit` events with Accept: text/event-stream",
        params: processParams,
        querystring: z.strictObject({
          offset: z.coerce.number().int().min(0).default(0),
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
        return reply.header("content-type", "application/octet-stream").send(output);
      }
      const sse = openSse(request, reply);
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
      sse.end();
      return reply;
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
