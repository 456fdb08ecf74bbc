import { posix } from "node:path";
import type { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { presentFile } from "../http/present.js";
import { fileEntrySchema, okSchema, pathQuery, processText, sandboxIdParams } from "../http/schemas.js";

const tags = ["files"];
const requiredPath = z.strictObject({
  path: processText("path", 4096)
    .min(1, "path is required")
    .describe("relative to the home of the sandbox's default user (its agent's hello says which)"),
});

export function fileRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.get(
    "/v1/sandboxes/:id/files",
    {
      schema: {
        tags,
        summary: "List a directory under the home",
        params: sandboxIdParams,
        querystring: pathQuery,
        response: { 200: z.object({ path: z.string(), items: z.array(fileEntrySchema) }) },
      },
    },
    async (request) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      const items = await agent.files.list(request.query.path);
      return { path: request.query.path, items: items.map(presentFile) };
    },
  );

  app.get(
    "/v1/sandboxes/:id/files/stat",
    {
      schema: {
        tags,
        summary: "Stat a path under the home",
        params: sandboxIdParams,
        querystring: requiredPath,
        response: { 200: fileEntrySchema },
      },
    },
    async (request) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      return presentFile(await agent.files.stat(request.query.path));
    },
  );

  app.get(
    "/v1/sandboxes/:id/files/content",
    {
      schema: {
        tags,
        summary: "Download a file (streamed)",
        params: sandboxIdParams,
        querystring: requiredPath,
      },
    },
    async (request, reply) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      const content = await agent.files.read(request.query.path);
      const name = posix.basename(request.query.path).replace(/[^\w.-]/g, "_") || "file";
      return reply
        .header("content-type", "application/octet-stream")
        .header("content-disposition", `attachment; filename="${name}"`)
        .send(content);
    },
  );

  app.post(
    "/v1/sandboxes/:id/files/mkdir",
    {
      schema: {
        tags,
        summary: "Create a directory (with parents by default)",
        params: sandboxIdParams,
        body: requiredPath.extend({ parents: z.boolean().default(true) }),
        response: { 200: okSchema },
      },
    },
    async (request) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      await agent.files.mkdir(request.body.path, { parents: request.body.parents });
      return { ok: true as const };
    },
  );

  app.post(
    "/v1/sandboxes/:id/files/rename",
    {
      schema: {
        tags,
        summary: "Move or rename a file or directory under the home (a symlink itself, not its target)",
        params: sandboxIdParams,
        body: z.strictObject({
          from: processText("from", 4096).min(1, "from is required").describe("relative to the home"),
          to: processText("to", 4096)
            .min(1, "to is required")
            .describe("relative to the home; a file or empty directory there is replaced"),
        }),
        response: { 200: okSchema },
      },
    },
    async (request) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      await agent.files.rename(request.body.from, request.body.to);
      return { ok: true as const };
    },
  );

  app.delete(
    "/v1/sandboxes/:id/files",
    {
      schema: {
        tags,
        summary: "Remove a file, or a directory with recursive=true",
        params: sandboxIdParams,
        querystring: requiredPath.extend({
          recursive: z
            .enum(["true", "false"])
            .default("false")
            .transform((v) => v === "true"),
        }),
        response: { 200: okSchema },
      },
    },
    async (request) => {
      const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
      await agent.files.remove(request.query.path, { recursive: request.query.recursive });
      return { ok: true as const };
    },
  );

  // Uploads take any content type and stream straight into the sandbox, so size is bounded
  // by the sandbox's disk, not by the server's memory.
  instance.register(async (scoped) => {
    scoped.removeAllContentTypeParsers();
    scoped.addContentTypeParser("*", (_request, payload, done) => done(null, payload));
    zodApp(scoped).put(
      "/v1/sandboxes/:id/files/content",
      {
        schema: {
          tags,
          summary: "Upload a file (raw body, streamed); replaces an existing file atomically",
          params: sandboxIdParams,
          querystring: requiredPath,
          response: { 201: z.object({ path: z.string(), sizeBytes: z.number() }) },
        },
      },
      async (request, reply) => {
        const { agent } = await ctx.sandboxes.agent(requirePrincipal(request).userId, request.params.id);
        // Without a Content-Type no parser runs; the raw request is then the body.
        const body = (request.body as Readable | undefined) ?? request.raw;
        const result = await agent.files.write(request.query.path, body);
        return reply.status(201).send({ path: request.query.path, sizeBytes: result.sizeBytes });
      },
    );
  });
}
