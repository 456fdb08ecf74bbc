/**
 * Follow-ups: a message to a finished run (or to every run of a group) continues its agent's
 * session as the run's next turn; see services/run-turns.ts for the model.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { idParams, resourceId } from "../http/schemas.js";
import { presentRun, runSchema } from "./runs.js";

const tags = ["runs"];
const messageBody = z.strictObject({
  prompt: z
    .string()
    .min(1, "prompt must not be empty")
    .max(256 * 1024)
    .refine((p) => !p.includes("\0"), "prompt must not contain NUL bytes (\\u0000)"),
});

const turnSchema = z
  .object({
    run: runSchema,
    turn: z.number().describe("the turn this message opened: 2 for a run's first follow-up"),
    afterSeq: z
      .number()
      .describe("the turn's events follow this sequence number: stream them with Last-Event-ID set to it"),
  })
  .meta({ id: "RunTurn" });

type Started = Awaited<ReturnType<ServerContext["runs"]["followUp"]>>;
const presentTurn = (started: Started): z.infer<typeof turnSchema> => ({
  run: presentRun(started.run),
  turn: started.turn,
  afterSeq: started.afterSeq,
});

export function runMessageRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/runs/:id/messages",
    {
      schema: {
        tags,
        summary:
          "Send a follow-up to a finished run: its agent continues the same session in the same sandbox and folder, as the run's next turn",
        params: idParams,
        body: messageBody,
        response: { 202: turnSchema },
      },
    },
    async (request, reply) => {
      const userId = requirePrincipal(request).userId;
      await ctx.quotas.admitRuns(userId, 0);
      const started = await ctx.runs.followUp(userId, request.params.id, request.body.prompt);
      return reply.status(202).send(presentTurn(started));
    },
  );

  app.post(
    "/v1/groups/:groupId/messages",
    {
      schema: {
        tags,
        summary:
          "Send the same follow-up to every run of a group; refused as a whole while any of them is still working",
        params: z.object({ groupId: resourceId }),
        body: messageBody,
        response: { 202: z.object({ groupId: z.string(), turns: z.array(turnSchema) }) },
      },
    },
    async (request, reply) => {
      const userId = requirePrincipal(request).userId;
      await ctx.quotas.admitRuns(userId, 0);
      const started = await ctx.runs.followUpGroup(userId, request.params.groupId, request.body.prompt);
      return reply.status(202).send({ groupId: request.params.groupId, turns: started.map(presentTurn) });
    },
  );
}
