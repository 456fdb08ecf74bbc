/**
 * Keeping a run's change (`POST /v1/runs/:id/keep`) and the git credentials it pushes, clones
 * and opens pull requests with (`/v1/git-credentials`).
 */
import type { RunKeepRecord } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { idParams, processText } from "../http/schemas.js";
import { FORGES, presentGitCredential } from "../services/git-credentials.js";
import { branchNameProblem } from "../services/keep-service.js";

export const keepSchema = z
  .object({
    runId: z.string(),
    branch: z.string().describe("the branch holding the run's change, in the original project"),
    commit: z.string(),
    merged: z.boolean().describe("the project's current branch was fast-forwarded or merged to it"),
    pushed: z.boolean(),
    pullRequestUrl: z.string().nullable(),
    keptAt: z.string(),
  })
  .meta({ id: "RunKeep" });

export function presentKeep(keep: RunKeepRecord): z.infer<typeof keepSchema> {
  return {
    runId: keep.runId,
    branch: keep.branch,
    commit: keep.commit,
    merged: keep.merged,
    pushed: keep.pushed,
    pullRequestUrl: keep.pullRequestUrl,
    keptAt: new Date(keep.keptAt).toISOString(),
  };
}

const branchName = z
  .string()
  .superRefine((name, ctx) => {
    const problem = branchNameProblem(name);
    if (problem) ctx.addIssue({ code: "custom", message: `branch: ${problem}` });
  })
  .describe("default polydev/<first 8 characters of the run id>");

/** `host[:port]` as git URLs carry it, lowercase. */
const gitHost = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:\d{1,5})?$/,
    "host is a lowercase host name, optionally with :port (github.com, git.example.com:8443)",
  );
const hostParams = z.object({ host: gitHost });

const gitCredentialSchema = z
  .object({
    host: z.string(),
    username: z.string(),
    forge: z.string().nullable(),
    apiUrl: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    lastUsedAt: z.string().nullable(),
  })
  .meta({ id: "GitCredential" });

export function keepRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/runs/:id/keep",
    {
      schema: {
        tags: ["runs"],
        summary:
          "Keep a finished run's change: commit it on a branch in the original project, fast-forward or merge, optionally push and open a pull request",
        params: idParams,
        body: z
          .strictObject({
            branch: branchName.optional(),
            message: processText("message", 16 * 1024)
              .min(1)
              .optional(),
            push: z
              .boolean()
              .optional()
              .describe("push the branch to the project's origin, from the sandbox"),
            pullRequest: z
              .strictObject({
                title: z.string().min(1).max(256).optional(),
                body: z
                  .string()
                  .max(64 * 1024)
                  .optional(),
                base: branchName.optional().describe("default: the project's current branch"),
              })
              .optional()
              .describe(
                "open a pull request (GitHub) or merge request (GitLab); needs push and a git credential",
              ),
          })
          .optional(),
        response: {
          200: keepSchema.extend({
            otherKeptRuns: z
              .array(z.string())
              .describe("runs of the same group kept before this one (allowed, and reported)"),
          }),
        },
      },
    },
    async (request) => {
      const userId = requirePrincipal(request).userId;
      const kept = await ctx.keeps.keep(userId, request.params.id, request.body ?? {});
      return { ...presentKeep(kept), otherKeptRuns: kept.otherKeptRuns };
    },
  );

  app.get(
    "/v1/runs/:id/keep",
    {
      schema: {
        tags: ["runs"],
        summary: "How a run's change was kept (404 while it was not)",
        params: idParams,
        response: { 200: keepSchema },
      },
    },
    async (request) => {
      const keep = await ctx.keeps.get(requirePrincipal(request).userId, request.params.id);
      if (!keep) throw new PolydevError("not_found", `run ${request.params.id}'s change was not kept`);
      return presentKeep(keep);
    },
  );

  app.put(
    "/v1/git-credentials/:host",
    {
      schema: {
        tags: ["credentials"],
        summary:
          "Store a git host's token (encrypted; never shown again, never enters a sandbox): used to clone and push through the server's relay and to open pull requests",
        params: hostParams,
        body: z.strictObject({
          token: z
            .string()
            .min(8, "token is too short to be a git host's token")
            .max(4096)
            .regex(/^[\x21-\x7e]+$/, "token must be printable ASCII without spaces"),
          username: z
            .string()
            .regex(/^[A-Za-z0-9._@+-]{1,100}$/, "username is 1–100 letters, digits or . _ @ + -")
            .optional()
            .describe("sent with the token over HTTP; default oauth2"),
          forge: z.enum(FORGES).optional().describe("default: by host (github.com, gitlab.com)"),
          apiUrl: z
            .url({ protocol: /^https?$/, error: "apiUrl must be an http(s) URL" })
            .max(2048)
            .optional()
            .describe(
              "the forge's REST API base; default https://api.github.com, https://<host>/api/v3 or /api/v4",
            ),
        }),
        response: { 200: gitCredentialSchema },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const stored = await ctx.gitCredentials.put(principal.userId, request.params.host, request.body);
      await ctx.audit.record({
        action: "credential.add",
        actor: principal,
        target: { type: "credential", id: stored.id },
        ip: request.ip,
        details: { provider: stored.provider, kind: "git_token" },
      });
      return presentGitCredential(stored);
    },
  );

  app.get(
    "/v1/git-credentials",
    {
      schema: {
        tags: ["credentials"],
        summary: "Your git credentials (metadata only)",
        response: { 200: z.object({ items: z.array(gitCredentialSchema) }) },
      },
    },
    async (request) => ({
      items: (await ctx.gitCredentials.list(requirePrincipal(request).userId)).map(presentGitCredential),
    }),
  );

  app.delete(
    "/v1/git-credentials/:host",
    {
      schema: {
        tags: ["credentials"],
        summary: "Delete a git credential",
        params: hostParams,
        response: { 200: z.object({ ok: z.literal(true) }) },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      await ctx.gitCredentials.remove(principal.userId, request.params.host);
      await ctx.audit.record({
        action: "credential.remove",
        actor: principal,
        ip: request.ip,
        details: { provider: `git:${request.params.host}` },
      });
      return { ok: true as const };
    },
  );
}
