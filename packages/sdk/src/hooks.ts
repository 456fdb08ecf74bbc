/**
 * Webhooks (signed notifications when runs and groups end; docs/webhooks.md) and the MCP servers
 * every run's agents get.
 */
import type { components, paths } from "./api-types.js";
import type { CallOptions } from "./client.js";
import type { ApiTransport } from "./transport.js";
import { unwrap } from "./transport.js";

export type Webhook = components["schemas"]["Webhook"];
/** A new webhook, with its signing secret: answered only at creation. */
export type CreatedWebhook = components["schemas"]["CreatedWebhook"];
export type CreateWebhook = paths["/v1/webhooks"]["post"]["requestBody"]["content"]["application/json"];
export type WebhookDelivery = components["schemas"]["WebhookDelivery"];
export type McpServer = components["schemas"]["McpServer"];
export type CreateMcpServer = paths["/v1/mcp-servers"]["post"]["requestBody"]["content"]["application/json"];

export function webhooksApi(transport: ApiTransport) {
  return {
    /** @example const { id, secret } = await polydev.webhooks.create({ url: "https://ci.example.com/hook" }); */
    create: async (webhook: CreateWebhook, call: CallOptions = {}): Promise<CreatedWebhook> =>
      unwrap(await transport.api().POST("/v1/webhooks", { body: webhook, signal: call.signal })),
    /** @example const { items } = await polydev.webhooks.list(); */
    list: async (call: CallOptions = {}): Promise<{ items: Webhook[] }> =>
      unwrap(await transport.api().GET("/v1/webhooks", { signal: call.signal })),
    /** @example await polydev.webhooks.remove("whk_…"); */
    remove: async (id: string, call: CallOptions = {}): Promise<{ ok: true }> =>
      unwrap(
        await transport.api().DELETE("/v1/webhooks/{id}", { params: { path: { id } }, signal: call.signal }),
      ),
    /** Newest first. @example const { items } = await polydev.webhooks.deliveries("whk_…"); */
    deliveries: async (
      id: string,
      options: { limit?: number } = {},
      call: CallOptions = {},
    ): Promise<{ items: WebhookDelivery[] }> =>
      unwrap(
        await transport.api().GET("/v1/webhooks/{id}/deliveries", {
          params: { path: { id }, query: options },
          signal: call.signal,
        }),
      ),
  };
}

export function mcpServersApi(transport: ApiTransport) {
  return {
    /** @example await polydev.mcpServers.create({ name: "files", command: "npx", args: ["-y", "@modelcontextprotocol/server-filesystem", "."] }); */
    create: async (server: CreateMcpServer, call: CallOptions = {}): Promise<McpServer> =>
      unwrap(await transport.api().POST("/v1/mcp-servers", { body: server, signal: call.signal })),
    /** @example const { items } = await polydev.mcpServers.list(); */
    list: async (call: CallOptions = {}): Promise<{ items: McpServer[] }> =>
      unwrap(await transport.api().GET("/v1/mcp-servers", { signal: call.signal })),
    /** @example await polydev.mcpServers.remove("files"); */
    remove: async (name: string, call: CallOptions = {}): Promise<{ ok: true }> =>
      unwrap(
        await transport
          .api()
          .DELETE("/v1/mcp-servers/{name}", { params: { path: { name } }, signal: call.signal }),
      ),
  };
}
