/** MCP servers: configured once per user, handed to every run's agent unless the run opts out. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { errorSchema, processText } from "../http/schemas.js";
import { presentMcpServer } from "../services/mcp-servers.js";

const tags = ["mcp-servers"];

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const nameSchema = z
  .string()
  .regex(NAME, "name is 1..64 of letters, digits, _ and - (it becomes part of tool names)");

const mcpServerSchema = z
  .object({
    name: z.string(),
    transport: z.enum(["stdio", "http", "sse"]),
    command: z.string().nullable(),
    args: z.array(z.string()),
    url: z.string().nullable(),
    env: z.array(z.string()).describe("the names of its environment variables (values are never answered)"),
    headers: z.array(z.string()).describe("the names of its headers (values are never answered)"),
    createdAt: z.string(),
  })
  .meta({ id: "McpServer" });

const secretValues = (what: string, keyPattern: RegExp, keyRule: string) =>
  z
    .record(
      z.string().regex(keyPattern, keyRule),
      z
        .string()
        .max(8192, `each ${what} value is at most 8192 characters`)
        .refine((v) => !v.includes("\0"), `${what} values must not contain NUL bytes`),
    )
    .refine((r) => Object.keys(r).length <= 50, `at most 50 ${what} entries`);

const DESCRIPTION = [
  "Either `command` (+ `args`, `env`): a stdio server the agent starts inside the run's sandbox (the command must exist there),",
  "or `url` (+ `transport` http (default) or sse, `headers`): a server the agent reaches from the sandbox.",
  "Env and header values are stored encrypted and written only into the run's config file in the sandbox.",
  "Claude Code gets them with --mcp-config, Codex in ~/.codex/config.toml (stdio and http only), Gemini in ~/.gemini/settings.json.",
  "A run takes all of them unless it says `mcpServers: false` or lists the names it wants.",
].join(" ");

export function mcpServerRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.post(
    "/v1/mcp-servers",
    {
      schema: {
        tags,
        summary: "Configure an MCP server for your agents",
        description: DESCRIPTION,
        body: z.strictObject({
          name: nameSchema,
          command: processText("command", 4096).min(1).optional(),
          args: z.array(processText("an argument", 8192)).max(100).optional(),
          env: secretValues(
            "env",
            /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
            "env names are letters, digits and _",
          ).optional(),
          url: z.string().min(1).max(2048).optional(),
          transport: z.enum(["http", "sse"]).optional(),
          headers: secretValues(
            "header",
            /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/,
            "header names are HTTP tokens",
          ).optional(),
        }),
        response: { 201: mcpServerSchema, 409: errorSchema.describe("the name is taken"), 429: errorSchema },
      },
    },
    async (request, reply) => {
      const created = await ctx.mcpServers.create(requirePrincipal(request).userId, request.body);
      return reply.status(201).send(presentMcpServer(created));
    },
  );

  app.get(
    "/v1/mcp-servers",
    {
      schema: {
        tags,
        summary: "Your MCP servers (secret values never answered)",
        response: { 200: z.object({ items: z.array(mcpServerSchema) }) },
      },
    },
    async (request) => ({
      items: (await ctx.mcpServers.list(requirePrincipal(request).userId)).map(presentMcpServer),
    }),
  );

  app.delete(
    "/v1/mcp-servers/:name",
    {
      schema: {
        tags,
        summary: "Delete an MCP server",
        params: z.object({ name: nameSchema }),
        response: { 200: z.object({ ok: z.literal(true) }), 404: errorSchema },
      },
    },
    async (request) => {
      await ctx.mcpServers.remove(requirePrincipal(request).userId, request.params.name);
      return { ok: true as const };
    },
  );
}
