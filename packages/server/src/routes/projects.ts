import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { idParams, processText } from "../http/schemas.js";
import { addProject, listProjects } from "../services/project-service.js";

const tags = ["projects"];

const projectSchema = z
  .object({
    name: z.string(),
    path: z.string().describe("the folder in the sandbox (relative to the home): a run's project"),
    url: z.string().nullable(),
    head: z.string().nullable(),
    branch: z.string().nullable(),
    check: z.string().nullable().describe("the command run in each agent's copy when a run ends"),
  })
  .meta({ id: "Project" });

const projectName = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,100}$/, "name is 1–100 letters, digits, '.', '_' or '-'")
  .refine((n) => n !== "." && n !== "..", "name must not be . or ..");
/** Network transports only: a clone reaches its remote over the sandbox's egress. */
const cloneUrl = processText("url", 4096).regex(
  /^(?:https?|git|ssh):\/\/[^\s]+$/,
  "url must be an http(s)://, git:// or ssh:// URL",
);
/** A branch, tag or commit; never something git could read as an option. */
const gitRef = z
  .string()
  .regex(/^(?!-)[A-Za-z0-9._/@^~-]{1,255}$/, "ref must be a branch, tag or commit name");
const folderPath = processText("path", 4096)
  .min(1)
  .refine(
    (p) => !p.startsWith("/") && !p.split("/").includes(".."),
    "path is relative to the home, without ..",
  );
const check = processText("check", 16 * 1024).min(1);

export function projectRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/sandboxes/:id/projects",
    {
      schema: {
        tags,
        summary:
          "Clone a git repository into the sandbox (the clone runs inside it, over its egress, or through the server's relay when you stored a git credential for its host: PUT /v1/git-credentials/{host}), or make an existing folder a project",
        params: idParams,
        body: z.union([
          z.strictObject({
            url: cloneUrl,
            ref: gitRef.optional(),
            name: projectName.optional(),
            check: check.optional(),
          }),
          z.strictObject({ path: folderPath, name: projectName.optional(), check: check.optional() }),
          z
            .strictObject({ archive: folderPath, name: projectName.optional(), check: check.optional() })
            .describe(
              "a .tar(.gz|.bz2|.xz|.zst), .tgz or .zip already uploaded to the sandbox (files API), unpacked into projects/<name>",
            ),
        ]),
        response: { 201: projectSchema },
      },
    },
    async (request, reply) => {
      const userId = requirePrincipal(request).userId;
      const { agent } = await ctx.sandboxes.agent(userId, request.params.id);
      // A host the user stored a git token for is reached through the server's relay.
      const added = await addProject(agent, request.body, async (url, clone) => {
        return (await ctx.gitAccess.run(userId, agent, url, clone)).value;
      });
      return reply.status(201).send(added);
    },
  );

  app.get(
    "/v1/sandboxes/:id/projects",
    {
      schema: {
        tags,
        summary: "The sandbox's projects (git repositories under projects/)",
        params: idParams,
        response: { 200: z.object({ items: z.array(projectSchema) }) },
      },
    },
    async (request) => {
      const userId = requirePrincipal(request).userId;
      const { agent } = await ctx.sandboxes.agent(userId, request.params.id);
      return { items: await listProjects(agent) };
    },
  );
}
