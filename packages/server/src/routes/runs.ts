import type { RunEvent, RunRecord } from "@polydev/core";
import { RUN_AGENTS, RUN_STATES } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { egressPolicyInputSchema } from "../http/network-schemas.js";
import { cursorSchema, idParams, processText, resourceId } from "../http/schemas.js";
import { serveSse } from "../http/serve-sse.js";
import { keepSchema, presentKeep } from "./runs-keep.js";

const tags = ["runs"];
const HOUR_MS = 60 * 60 * 1000;
/** One argument of a process, its NUL included, must stay under 128 KiB. */
const CLI_PROMPT_BYTES = 128 * 1024;

export const runSchema = z
  .object({
    id: z.string(),
    sandboxId: z.string(),
    groupId: z.string().nullable(),
    agent: z.enum(RUN_AGENTS),
    prompt: z.string(),
    model: z.string().nullable(),
    cwd: z.string(),
    state: z.enum(RUN_STATES),
    exitReason: z.string().nullable(),
    finalText: z.string().nullable(),
    usage: z.object({ inputTokens: z.number(), outputTokens: z.number() }),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
  })
  .meta({ id: "Run" });

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function presentRun(run: RunRecord): z.infer<typeof runSchema> {
  return {
    id: run.id,
    sandboxId: run.sandboxId,
    groupId: run.groupId,
    agent: run.agent as z.infer<typeof runSchema>["agent"],
    prompt: run.prompt,
    model: run.model,
    cwd: run.cwd,
    state: run.state as z.infer<typeof runSchema>["state"],
    exitReason: run.exitReason,
    finalText: run.finalText,
    usage: { inputTokens: run.inputTokens, outputTokens: run.outputTokens },
    createdAt: new Date(run.createdAt).toISOString(),
    startedAt: iso(run.startedAt),
    endedAt: iso(run.endedAt),
  };
}

export function runRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/runs",
    {
      schema: {
        tags,
        summary: "Run a prompt with one agent (agent) or several side by side (agents)",
        body: z
          .strictObject({
            agent: z.enum(RUN_AGENTS).optional(),
            agents: z.array(z.enum(RUN_AGENTS)).min(1).max(8).optional(),
            prompt: z
              .string()
              .min(1, "prompt must not be empty")
              .max(256 * 1024)
              .refine((p) => !p.includes("\0"), "prompt must not contain NUL bytes (\\u0000)"),
            sandboxId: resourceId.optional().describe("default: your default sandbox, created if needed"),
            model: processText("model", 200).min(1).optional(),
            cwd: processText("cwd", 4096).min(1).optional().describe("relative to the home"),
            timeoutMs: z
              .number()
              .int()
              .min(1000)
              .max(24 * HOUR_MS)
              .default(30 * 60 * 1000),
            maxTurns: z.number().int().min(1).max(1000).optional(),
            setup: z
              .strictObject({
                command: processText("setup.command", 64 * 1024).min(1, "setup.command must not be empty"),
                network: egressPolicyInputSchema
                  .optional()
                  .describe("rules added to an allow-list sandbox's own while the setup command runs"),
              })
              .optional()
              .describe("a command run before the agent, in its working directory (e.g. npm ci)"),
            project: processText("project", 4096)
              .min(1)
              .refine(
                (p) => !p.startsWith("/") && !p.split("/").includes(".."),
                "project is relative to the home, without ..",
              )
              .optional()
              .describe(
                "a folder holding a git repository (e.g. projects/app); a group's agents each work in a copy. Default for a group: the sandbox's only project",
              ),
            check: processText("check", 16 * 1024)
              .min(1)
              .optional()
              .describe(
                "run in the agent's copy when the run ends (e.g. npm test); default: the project's check",
              ),
          })
          .refine(
            (b) => (b.agent === undefined) !== (b.agents === undefined),
            "send exactly one of agent or agents",
          )
          // The CLIs take the prompt as an argument, which the kernel caps; the built-in agent
          // sends it to the provider's API and takes all of it.
          .refine(
            (b) =>
              [b.agent, ...(b.agents ?? [])].every((a) => a === undefined || a === "builtin") ||
              Buffer.byteLength(b.prompt) < CLI_PROMPT_BYTES,
            {
              message:
                "prompt is larger than the 128 KiB a CLI agent takes; use agent builtin for longer prompts",
              path: ["prompt"],
            },
          ),
        response: { 201: z.union([runSchema, z.object({ groupId: z.string(), runs: z.array(runSchema) })]) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const agents = body.agents ?? (body.agent ? [body.agent] : []);
      const userId = requirePrincipal(request).userId;
      await ctx.quotas.admitRuns(userId, agents.length);
      const runs = await ctx.runs.start(userId, { ...body, agents });
      const [first] = runs;
      if (runs.length === 1 && first) return reply.status(201).send(presentRun(first));
      return reply.status(201).send({ groupId: first?.groupId ?? "", runs: runs.map(presentRun) });
    },
  );

  app.get(
    "/v1/runs",
    {
      schema: {
        tags,
        summary: "Your runs, newest first",
        querystring: z.strictObject({
          limit: z.coerce.number().int().min(1).max(200).default(50),
          cursor: cursorSchema.optional(),
        }),
        response: { 200: z.object({ items: z.array(runSchema), nextCursor: z.string().nullable() }) },
      },
    },
    async (request) => {
      const page = await ctx.store.runs.listForUser(requirePrincipal(request).userId, request.query);
      return { items: page.items.map(presentRun), nextCursor: page.nextCursor ?? null };
    },
  );

  app.get(
    "/v1/runs/:id",
    {
      schema: {
        tags,
        summary: "A run: state, timings, usage, final text",
        params: idParams,
        response: { 200: runSchema },
      },
    },
    async (request) => presentRun(await ctx.runs.get(requirePrincipal(request).userId, request.params.id)),
  );

  app.post(
    "/v1/runs/:id/cancel",
    {
      schema: {
        tags,
        summary: "Stop the agent and everything it started",
        params: idParams,
        response: { 200: runSchema },
      },
    },
    async (request) => presentRun(await ctx.runs.cancel(requirePrincipal(request).userId, request.params.id)),
  );

  app.get(
    "/v1/runs/:id/events",
    {
      schema: {
        tags,
        summary:
          "Server-sent events (status, text, tool_call, tool_result, usage, error, done), each with its sequence id; reconnect with Last-Event-ID",
        params: idParams,
        querystring: z.strictObject({ after: z.coerce.number().int().min(0).optional() }),
      },
    },
    async (request, reply) => {
      const userId = requirePrincipal(request).userId;
      await ctx.runs.get(userId, request.params.id);
      const header = request.headers["last-event-id"];
      const fromHeader = typeof header === "string" && /^\d+$/.test(header) ? Number(header) : undefined;
      const after = fromHeader ?? request.query.after ?? 0;
      return serveSse(request, reply, async (sse) => {
        for await (const event of ctx.runs.events(userId, request.params.id, after, sse.signal)) {
          await sse.send(event.body.type, wireEvent(event), event.seq);
        }
      });
    },
  );
}

const changesSchema = z
  .object({
    runId: z.string(),
    project: z.string(),
    baseCommit: z.string().nullable(),
    files: z.array(z.object({ path: z.string(), status: z.string() })),
    filesTruncated: z.boolean(),
    diff: z.string(),
    diffTruncated: z.boolean().describe("the diff was cut at 1 MiB"),
    check: z
      .object({
        command: z.string(),
        exitCode: z.number().nullable(),
        output: z.string(),
        outputTruncated: z.boolean(),
      })
      .nullable(),
    error: z.string().nullable().describe("why the changes could not be read, else null"),
    recordedAt: z.string(),
    keep: keepSchema.nullable().describe("how the change was kept (POST /v1/runs/:id/keep), else null"),
    usage: z.object({ inputTokens: z.number(), outputTokens: z.number() }),
    durationMs: z.number().nullable(),
    costUsd: z
      .number()
      .nullable()
      .describe(
        "by the operator's price table (POLYDEV_MODEL_PRICES); null when the run's model has no price",
      ),
  })
  .meta({ id: "RunChanges" });

/** A run without a model named is priced by the table's `*` entry, if it has one. */
function runCost(
  prices: Readonly<Record<string, { inputPerMTokUsd: number; outputPerMTokUsd: number }>>,
  model: string | null,
  inputTokens: number,
  outputTokens: number,
): number | null {
  const price = (model === null ? undefined : prices[model]) ?? prices["*"];
  if (!price) return null;
  return (inputTokens * price.inputPerMTokUsd + outputTokens * price.outputPerMTokUsd) / 1_000_000;
}

export function changesRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);
  app.get(
    "/v1/runs/:id/changes",
    {
      schema: {
        tags,
        summary: "What a run in a project changed: diff against its base commit, changed files, check result",
        params: idParams,
        response: { 200: changesSchema },
      },
    },
    async (request) => {
      const userId = requirePrincipal(request).userId;
      const changes = await ctx.runs.changes(userId, request.params.id);
      const run = await ctx.runs.get(userId, request.params.id);
      const keep = await ctx.store.runs.getKeep(run.id);
      return {
        ...changes,
        keep: keep ? presentKeep(keep) : null,
        recordedAt: new Date(changes.recordedAt).toISOString(),
        usage: { inputTokens: run.inputTokens, outputTokens: run.outputTokens },
        durationMs: run.startedAt !== null && run.endedAt !== null ? run.endedAt - run.startedAt : null,
        costUsd: runCost(ctx.config.modelPrices, run.model, run.inputTokens, run.outputTokens),
      };
    },
  );
}

function wireEvent(event: RunEvent): Record<string, unknown> {
  return {
    seq: event.seq,
    at: new Date(event.at).toISOString(),
    ...event.body,
    ...(event.raw ? { raw: event.raw } : {}),
  };
}
