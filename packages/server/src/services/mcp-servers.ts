/**
 * MCP servers a user configures once and every run of theirs gets (unless the run opts out):
 * a stdio command run inside the run's sandbox by the agent CLI, or an http/sse URL the agent
 * reaches from the sandbox. Env and header values may be secrets: they are sealed by the vault
 * before they are stored and opened only on their way into the sandbox's config file.
 */
import type { McpServerRecord, McpTransport, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { McpServerSpec } from "@polydev/runners";
import type { EnvelopeVault } from "@polydev/vault";
import { newId } from "./api-keys.js";
import { mcpSecretOwner } from "./hook-secrets.js";

export interface McpServerInput {
  name: string;
  command?: string | undefined;
  args?: string[] | undefined;
  env?: Record<string, string> | undefined;
  url?: string | undefined;
  transport?: "http" | "sse" | undefined;
  headers?: Record<string, string> | undefined;
}

export interface McpServerView {
  name: string;
  transport: McpTransport;
  command: string | null;
  args: string[];
  url: string | null;
  /** Names only: the values are stored encrypted and never answered. */
  env: string[];
  headers: string[];
  createdAt: string;
}

/** Which of the user's servers a run gets: all (undefined), none (false), or those named. */
export type McpSelection = false | string[] | undefined;

export function presentMcpServer(server: McpServerRecord): McpServerView {
  return {
    name: server.name,
    transport: server.transport,
    command: server.command,
    args: server.args,
    url: server.url,
    env: server.envNames,
    headers: server.headerNames,
    createdAt: new Date(server.createdAt).toISOString(),
  };
}

const owner = (server: Pick<McpServerRecord, "userId" | "id">) => mcpSecretOwner(server.userId, server.id);

export class McpServerService {
  constructor(
    private readonly store: Store,
    private readonly vault: EnvelopeVault,
    private readonly maxPerUser: number,
    private readonly now: () => number,
  ) {}

  async create(userId: string, input: McpServerInput): Promise<McpServerRecord> {
    const stdio = input.command !== undefined;
    if (stdio === (input.url !== undefined))
      throw new PolydevError(
        "invalid_request",
        "an MCP server has either command (a stdio server run in the sandbox) or url (an http or sse server), not both",
      );
    if (stdio && (input.headers !== undefined || input.transport !== undefined))
      throw new PolydevError(
        "invalid_request",
        "headers and transport belong to a url server, not a command",
      );
    if (!stdio && (input.env !== undefined || input.args !== undefined))
      throw new PolydevError("invalid_request", "env and args belong to a command server, not a url");
    if (input.url !== undefined) {
      let url: URL | undefined;
      try {
        url = new URL(input.url);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== "http:" && url.protocol !== "https:"))
        throw new PolydevError("invalid_request", "url must be an absolute http:// or https:// URL");
    }
    if ((await this.store.mcpServers.countForUser(userId)) >= this.maxPerUser)
      throw new PolydevError(
        "limit_exceeded",
        `at most ${this.maxPerUser} MCP servers may be configured per user; delete one first`,
        { details: { limit: this.maxPerUser } },
      );
    const id = newId("mcp");
    const env = input.env ?? {};
    const headers = input.headers ?? {};
    const hasSecrets = Object.keys(env).length + Object.keys(headers).length > 0;
    if (hasSecrets) await this.vault.refresh();
    const record: McpServerRecord = {
      id,
      userId,
      name: input.name,
      transport: stdio ? "stdio" : (input.transport ?? "http"),
      command: input.command ?? null,
      args: input.args ?? [],
      url: input.url ?? null,
      envNames: Object.keys(env),
      headerNames: Object.keys(headers),
      sealed: hasSecrets ? this.vault.seal(JSON.stringify({ env, headers }), owner({ userId, id })) : null,
      createdAt: this.now(),
    };
    await this.store.mcpServers.insert(record).catch((error: unknown) => {
      if (error instanceof PolydevError && error.code === "conflict")
        throw new PolydevError(
          "conflict",
          `you already have an MCP server named ${input.name}; delete it first`,
          {
            details: { field: "name" },
          },
        );
      throw error;
    });
    return record;
  }

  list(userId: string): Promise<McpServerRecord[]> {
    return this.store.mcpServers.listForUser(userId);
  }

  async remove(userId: string, name: string): Promise<void> {
    if (!(await this.store.mcpServers.delete(userId, name)))
      throw new PolydevError("not_found", `you have no MCP server named ${name}`);
  }

  /** The servers a run gets, secrets opened; a name the user has no server for is a 400. */
  async forRun(userId: string, selection: McpSelection): Promise<McpServerSpec[]> {
    if (selection === false) return [];
    const all = await this.store.mcpServers.listForUser(userId);
    let chosen = all;
    if (selection !== undefined) {
      const missing = selection.filter((name) => !all.some((s) => s.name === name));
      if (missing.length > 0)
        throw new PolydevError(
          "invalid_request",
          `mcpServers names servers you have not configured: ${missing.join(", ")} (see GET /v1/mcp-servers)`,
          { details: { missing } },
        );
      chosen = all.filter((s) => selection.includes(s.name));
    }
    const unknownKey = chosen.some(
      (s) => s.sealed !== null && !this.vault.hasKey(this.vault.keyIdOf(s.sealed)),
    );
    if (unknownKey) await this.vault.refresh();
    return chosen.map((server) => {
      const secrets = server.sealed
        ? (JSON.parse(this.vault.open(server.sealed, owner(server))) as {
            env: Record<string, string>;
            headers: Record<string, string>;
          })
        : { env: {}, headers: {} };
      return {
        name: server.name,
        transport: server.transport,
        command: server.command ?? undefined,
        args: server.args,
        env: secrets.env,
        url: server.url ?? undefined,
        headers: secrets.headers,
      };
    });
  }
}
