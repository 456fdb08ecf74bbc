/**
 * The run's stdio MCP servers, for the built-in agent: each is started INSIDE the sandbox through
 * the agent connection (never on the host) and spoken to with the official MCP client. Their tools
 * are offered to the model as `mcp__<server>__<tool>`; they live for one turn and are killed when
 * it ends. http/sse servers are left to the CLI agents: reaching an arbitrary URL from the server
 * process would be an SSRF surface.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { AgentConnection } from "@polydev/core";
import type { McpServerSpec } from "../mcp-config.js";
import { ExecTransport } from "./mcp-transport.js";
import type { ToolSpec } from "./tools.js";

/** Tools taken from one server; the rest are left out (a model cannot choose among thousands). */
export const MAX_MCP_TOOLS_PER_SERVER = 100;
const CONNECT_TIMEOUT_MS = 30_000;
const CALL_TIMEOUT_MS = 120_000;
const MAX_DESCRIPTION_CHARS = 2_000;
/** A tool's input schema, as JSON; a larger one leaves the tool out. */
const MAX_SCHEMA_CHARS = 64 * 1024;

/** The providers' tool-name rule ([A-Za-z0-9_-]{1,64}) applied to `mcp__<server>__<tool>`. */
export function mcpToolName(server: string, tool: string): string {
  return `mcp__${server}__${tool}`.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
}

interface Route {
  client: Client;
  transport: ExecTransport;
  tool: string;
}

/** The SDK says only "Connection closed" when the process is gone: the transport knows why. */
function why(error: unknown, transport: ExecTransport | undefined): string {
  return transport?.reason ?? (error instanceof Error ? error.message : String(error));
}

export class McpTools {
  private constructor(
    readonly specs: ToolSpec[],
    private readonly routes: Map<string, Route>,
    private readonly clients: Client[],
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** No servers: the tools of a run without MCP. */
  static none(): McpTools {
    return new McpTools([], new Map(), [], undefined);
  }

  /**
   * Starts every stdio server (side by side: one slow to answer does not hold up the others) and
   * lists its tools. A server that cannot be started or listed is left out and reported through
   * `onProblem`: the run goes on without it.
   */
  static async connect(
    agent: AgentConnection,
    servers: McpServerSpec[],
    options: { cwd: string; signal?: AbortSignal; onProblem(message: string): Promise<void> },
  ): Promise<McpTools> {
    const stdio = servers.filter((server) => server.transport === "stdio" && server.command);
    const clients: Client[] = [];
    const started = await Promise.all(
      stdio.map(async (server) => {
        const client = new Client({ name: "polydev", version: "0.1.0" });
        clients.push(client);
        let transport: ExecTransport | undefined;
        try {
          const process = await agent.exec(
            { argv: [server.command as string, ...server.args], env: server.env, cwd: options.cwd },
            options.signal,
          );
          transport = new ExecTransport(process);
          await client.connect(transport, { timeout: CONNECT_TIMEOUT_MS, signal: options.signal });
          const listed = await client.listTools(undefined, {
            timeout: CONNECT_TIMEOUT_MS,
            signal: options.signal,
          });
          return { server, client, transport, tools: listed.tools.slice(0, MAX_MCP_TOOLS_PER_SERVER) };
        } catch (error) {
          await client.close().catch(() => {});
          return { server, problem: why(error, transport) };
        }
      }),
    );
    const specs: ToolSpec[] = [];
    const routes = new Map<string, Route>();
    // In the order the servers were configured, so the tools are offered in a stable order.
    for (const entry of started) {
      if ("problem" in entry) {
        await options.onProblem(`MCP server ${entry.server.name} is left out of this turn: ${entry.problem}`);
        continue;
      }
      const { server, client, transport } = entry;
      for (const tool of entry.tools) {
        const name = mcpToolName(server.name, tool.name);
        const schema = JSON.stringify(tool.inputSchema ?? {});
        if (routes.has(name) || schema.length > MAX_SCHEMA_CHARS) continue;
        routes.set(name, { client, transport, tool: tool.name });
        specs.push({
          name,
          description: (tool.description ?? `${tool.name} from MCP server ${server.name}`).slice(
            0,
            MAX_DESCRIPTION_CHARS,
          ),
          parameters: { ...(JSON.parse(schema) as object), type: "object" },
        });
      }
    }
    return new McpTools(specs, routes, clients, options.signal);
  }

  has(name: string): boolean {
    return this.routes.has(name);
  }

  /** The tool's text content joined; a tool reporting an error, or a server gone, throws. */
  async call(name: string, input: Record<string, unknown>): Promise<string> {
    const route = this.routes.get(name);
    if (!route) throw new Error(`unknown tool ${name}`);
    const result = await route.client
      .callTool({ name: route.tool, arguments: input }, undefined, {
        timeout: CALL_TIMEOUT_MS,
        signal: this.signal,
      })
      .catch((error: unknown) => {
        throw new Error(`MCP tool ${name} failed: ${why(error, route.transport)}`);
      });
    const content = Array.isArray(result.content)
      ? (result.content as { type: string; text?: string }[])
      : [];
    const text = content
      .map((part) => (part.type === "text" ? (part.text ?? "") : `[${part.type} content not shown]`))
      .join("\n");
    if (result.isError) throw new Error(text || `${name} failed`);
    return text;
  }

  /** Kills every server process of the turn. */
  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close().catch(() => {})));
  }
}
