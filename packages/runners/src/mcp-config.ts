/**
 * A user's MCP servers, handed to each CLI agent in its own configuration format: Claude Code
 * reads a JSON file named by `--mcp-config`, Codex the `[mcp_servers.<name>]` tables of its
 * config.toml, Gemini the `mcpServers` of its settings.json. The files are written into the
 * sandbox for the run; a stdio server's command is started by the CLI, so it runs inside the
 * sandbox like every other process of the run, never on the host.
 */
import type { RunAgent } from "@polydev/core";
import type { Invocation } from "./runner.js";

export interface McpServerSpec {
  /** [A-Za-z0-9_-]: a TOML bare key and part of the tools' names (`mcp__<name>__<tool>`). */
  name: string;
  transport: "stdio" | "http" | "sse";
  command?: string | undefined;
  args: string[];
  env: Record<string, string>;
  url?: string | undefined;
  headers: Record<string, string>;
}

/** Where Claude Code's MCP config goes, relative to the sandbox home. */
export const CLAUDE_MCP_CONFIG = ".polydev/mcp/claude.json";

/** The invocation with the servers added (unchanged when there are none or the agent takes none here). */
export function withMcpServers(
  agent: RunAgent,
  invocation: Invocation,
  servers: McpServerSpec[],
  home: string,
): Invocation {
  if (servers.length === 0) return invocation;
  if (agent === "claude") return forClaude(invocation, servers, home);
  if (agent === "codex") return forCodex(invocation, servers);
  if (agent === "gemini") return forGemini(invocation, servers);
  return invocation;
}

function forClaude(invocation: Invocation, servers: McpServerSpec[], home: string): Invocation {
  const mcpServers = Object.fromEntries(
    servers.map((s) => [
      s.name,
      s.transport === "stdio"
        ? { type: "stdio", command: s.command, args: s.args, env: s.env }
        : { type: s.transport, url: s.url, headers: s.headers },
    ]),
  );
  return {
    ...invocation,
    // Last on the line: --mcp-config takes every argument after it as another config.
    argv: [...invocation.argv, "--mcp-config", `${home.replace(/\/$/, "")}/${CLAUDE_MCP_CONFIG}`],
    files: { ...invocation.files, [CLAUDE_MCP_CONFIG]: JSON.stringify({ mcpServers }, null, 2) },
  };
}

/** A TOML basic string: JSON's escapes (\", \\, \n, \uXXXX) are TOML's too. */
const toml = (text: string): string => JSON.stringify(text);
const tomlTable = (entries: Record<string, string>): string =>
  `{ ${Object.entries(entries)
    .map(([key, value]) => `${toml(key)} = ${toml(value)}`)
    .join(", ")} }`;

function forCodex(invocation: Invocation, servers: McpServerSpec[]): Invocation {
  const path = ".codex/config.toml";
  const lines: string[] = [];
  for (const server of servers) {
    // Codex speaks stdio and streamable HTTP; an SSE-only server is left out for it.
    if (server.transport === "sse") continue;
    lines.push(`[mcp_servers.${server.name}]`);
    if (server.transport === "stdio") {
      lines.push(`command = ${toml(server.command ?? "")}`);
      lines.push(`args = [${server.args.map(toml).join(", ")}]`);
      if (Object.keys(server.env).length > 0) lines.push(`env = ${tomlTable(server.env)}`);
    } else {
      lines.push(`url = ${toml(server.url ?? "")}`);
      if (Object.keys(server.headers).length > 0) lines.push(`http_headers = ${tomlTable(server.headers)}`);
    }
  }
  if (lines.length === 0) return invocation;
  const before = invocation.files[path] ?? "";
  return { ...invocation, files: { ...invocation.files, [path]: `${before}\n${lines.join("\n")}\n` } };
}

function forGemini(invocation: Invocation, servers: McpServerSpec[]): Invocation {
  const path = ".gemini/settings.json";
  const settings = JSON.parse(invocation.files[path] ?? "{}") as Record<string, unknown>;
  settings.mcpServers = Object.fromEntries(
    servers.map((s) => [
      s.name,
      s.transport === "stdio"
        ? { command: s.command, args: s.args, env: s.env }
        : // Gemini names a streamable-HTTP server's address httpUrl and an SSE one's url.
          { [s.transport === "http" ? "httpUrl" : "url"]: s.url, headers: s.headers },
    ]),
  );
  return { ...invocation, files: { ...invocation.files, [path]: JSON.stringify(settings) } };
}
