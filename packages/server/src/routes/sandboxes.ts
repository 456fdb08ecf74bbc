import { PolydevError } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { imageSchema, presentImage, snapshotBody } from "../http/image-schemas.js";
import { presentSandbox } from "../http/present.js";
import {
  createSandboxBody,
  forkSandboxBody,
  listQuery,
  logEntrySchema,
  sandboxIdParams,
  sandboxListSchema,
  sandboxSchema,
  updateSandboxBody,
} from "../http/schemas.js";

const tags = ["sandboxes"];

export function sandboxRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/sandboxes",
    {
      schema: {
        tags,
        summary: "Create a sandbox",
        body: createSandboxBody(ctx.config.sandboxMaximums).default({}),
        response: { 201: sandboxSchema },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      const sandbox = await ctx.sandboxes.create(principal.userId, request.body);
      return reply.status(201).send(presentSandbox(sandbox));
    },
  );

  app.get(
    "/v1/sandboxes",
    {
      schema: {
        tags,
        summary: "List your sandboxes, newest first",
        querystring: listQuery,
        response: { 200: sandboxListSchema },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const page = await ctx.store.sandboxes.listForUser(principal.userId, {
        limit: request.query.limit,
        cursor: request.query.cursor,
        states: request.query.state ? [request.query.state] : undefined,
      });
      return { items: page.items.map(presentSandbox), nextCursor: page.nextCursor ?? null };
    },
  );

  app.get(
    "/v1/sandboxes/:id",
    { schema: { tags, summary: "Get a sandbox", params: sandboxIdParams, response: { 200: sandboxSchema } } },
    async (request) =>
      presentSandbox(await ctx.sandboxes.get(requirePrincipal(request).userId, request.params.id)),
  );

  app.delete(
    "/v1/sandboxes/:id",
    {
      schema: {
        tags,
        summary: "Destroy a sandbox (idempotent)",
        params: sandboxIdParams,
        response: { 200: sandboxSchema },
      },
    },
    async (request) =>
      presentSandbox(await ctx.sandboxes.destroy(requirePrincipal(request).userId, request.params.id)),
  );

  app.post(
    "/v1/sandboxes/:id/hibernate",
    {
      schema: {
        tags,
        summary: "Freeze every process of a sandbox",
        params: sandboxIdParams,
        response: { 200: sandboxSchema },
      },
    },
    async (request) =>
      presentSandbox(await ctx.sandboxes.hibernate(requirePrincipal(request).userId, request.params.id)),
  );

  app.post(
    "/v1/sandboxes/:id/resume",
    {
      schema: {
        tags,
        summary: "Thaw a hibernated sandbox",
        params: sandboxIdParams,
        response: { 200: sandboxSchema },
      },
    },
    async (request) =>
      presentSandbox(await ctx.sandboxes.resume(requirePrincipal(request).userId, request.params.id)),
  );

  app.post(
    "/v1/sandboxes/:id/stop",
    {
      schema: {
        tags,
        summary: "End every process of a sandbox and keep its disk (drivers with the durable feature)",
        description:
          "Running or hibernated → stopped. A stopped sandbox is started again by POST …/start or by " +
          "anything that needs it running (exec, terminal, files, processes, runs). Idempotent.",
        params: sandboxIdParams,
        response: { 200: sandboxSchema },
      },
    },
    async (request) =>
      presentSandbox(await ctx.sandboxes.stop(requirePrincipal(request).userId, request.params.id)),
  );

  app.post(
    "/v1/sandboxes/:id/start",
    {
      schema: {
        tags,
        summary: "Start a stopped sandbox from its disk (a hibernated one is resumed)",
        params: sandboxIdParams,
        response: { 200: sandboxSchema },
      },
    },
    async (request) =>
      presentSandbox(await ctx.sandboxes.start(requirePrincipal(request).userId, request.params.id)),
  );

  app.patch(
    "/v1/sandboxes/:id",
    {
      schema: {
        tags,
        summary: "Grow a sandbox's disk (running, hibernated or stopped)",
        params: sandboxIdParams,
        body: updateSandboxBody(ctx.config.sandboxMaximums),
        response: { 200: sandboxSchema },
      },
    },
    async (request) =>
      presentSandbox(
        await ctx.sandboxes.growDisk(
          requirePrincipal(request).userId,
          request.params.id,
          request.body.diskMb,
        ),
      ),
  );

  app.post(
    "/v1/sandboxes/:id/fork",
    {
      schema: {
        tags,
        summary: "Make new sandboxes whose disks start as copy-on-write copies of this one's",
        description:
          "All or none. Each new sandbox has the same limits, network (allow-list included), " +
          "environment, metadata and timeouts, and counts against your sandbox limit.",
        params: sandboxIdParams,
        body: forkSandboxBody.default({ count: 1 }),
        response: { 201: z.object({ sandboxes: z.array(sandboxSchema) }) },
      },
    },
    async (request, reply) => {
      const forks = await ctx.sandboxes.fork(
        requirePrincipal(request).userId,
        request.params.id,
        request.body,
      );
      return reply.status(201).send({ sandboxes: forks.map(presentSandbox) });
    },
  );

  app.post(
    "/v1/sandboxes/:id/snapshots",
    {
      schema: {
        tags,
        summary: "Turn the sandbox's disk, as it is now, into an image others can start from",
        description:
          "The new image is the sandbox's image plus one layer of its changes, copied on write; the sandbox keeps running. " +
          'Start from it with POST /v1/sandboxes {"image": "<name>"}.',
        params: sandboxIdParams,
        body: snapshotBody,
        response: { 201: imageSchema },
      },
    },
    async (request, reply) => {
      const image = await ctx.sandboxes.snapshot(
        requirePrincipal(request).userId,
        request.params.id,
        request.body.name,
      );
      return reply.status(201).send(presentImage(image));
    },
  );

  app.get(
    "/v1/sandboxes/:id/logs",
    {
      schema: {
        tags,
        summary: "Lifecycle and console logs; kept after a sandbox fails",
        params: sandboxIdParams,
        querystring: z.strictObject({
          afterId: z.coerce.number().int().min(0).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(500),
        }),
        response: { 200: z.object({ items: z.array(logEntrySchema), console: z.string().nullable() }) },
      },
    },
    async (request) => {
      const sandbox = await ctx.sandboxes.get(requirePrincipal(request).userId, request.params.id);
      const entries = await ctx.store.sandboxLogs.list(sandbox.id, {
        afterId: request.query.afterId,
        limit: request.query.limit,
      });
      const live =
        sandbox.state === "running" || sandbox.state === "hibernated" || sandbox.state === "stopped";
      const consoleText =
        live && sandbox.handle ? await ctx.driver.logs(sandbox.handle).catch(() => null) : null;
      return {
        items: entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
        console: consoleText,
      };
    },
  );

  app.get(
    "/v1/sandboxes/:id/stats",
    {
      schema: {
        tags,
        summary: "Live CPU, memory, process and disk use",
        params: sandboxIdParams,
        response: {
          200: z.object({
            cpuUsageNs: z.number(),
            memoryBytes: z.number(),
            memoryLimitBytes: z.number(),
            pids: z.number(),
            diskBytes: z.number(),
          }),
        },
      },
    },
    async (request) => {
      const userId = requirePrincipal(request).userId;
      // Looking at a stopped sandbox's figures must not start it (and make it use what it shows).
      const found = await ctx.sandboxes.get(userId, request.params.id);
      if (found.state === "stopped") {
        throw new PolydevError(
          "sandbox_not_running",
          `sandbox ${found.id} is stopped: it uses no CPU or memory; start it (POST /v1/sandboxes/${found.id}/start) for live figures`,
        );
      }
      const sandbox = await ctx.sandboxes.requireRunning(userId, found.id);
      if (!sandbox.handle) throw new Error("running sandbox without a handle");
      return ctx.driver.stats(sandbox.handle);
    },
  );
}
