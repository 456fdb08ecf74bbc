/** What a sandbox did and how hard it works: lifecycle logs (kept after a failure) and live usage. */
import type { paths } from "./api-types.js";
import type { CallOptions } from "./client.js";
import type { ApiTransport } from "./transport.js";
import { unwrap } from "./transport.js";

export type SandboxLogs =
  paths["/v1/sandboxes/{id}/logs"]["get"]["responses"]["200"]["content"]["application/json"];
export type SandboxStats =
  paths["/v1/sandboxes/{id}/stats"]["get"]["responses"]["200"]["content"]["application/json"];

/**
 * Lifecycle log lines (after `afterId`, oldest first) and the console output; a failed sandbox
 * keeps both.
 * @example const { items, console } = await polydev.sandboxes.logs(box.id);
 */
export async function sandboxLogs(
  transport: ApiTransport,
  id: string,
  options: CallOptions & { afterId?: number; limit?: number } = {},
): Promise<SandboxLogs> {
  const query = {
    ...(options.afterId !== undefined ? { afterId: options.afterId } : {}),
    ...(options.limit !== undefined ? { limit: options.limit } : {}),
  };
  return unwrap(
    await transport.api().GET("/v1/sandboxes/{id}/logs", {
      params: { path: { id }, query },
      signal: options.signal,
    }),
  );
}

/**
 * Live CPU time, memory, process count and disk use.
 * @example const { memoryBytes, memoryLimitBytes } = await polydev.sandboxes.stats(box.id);
 */
export async function sandboxStats(
  transport: ApiTransport,
  id: string,
  call: CallOptions = {},
): Promise<SandboxStats> {
  return unwrap(
    await transport.api().GET("/v1/sandboxes/{id}/stats", { params: { path: { id } }, signal: call.signal }),
  );
}
