/**
 * Background processes in a sandbox: started once, they run on without a client, keep their
 * combined output, and can be reattached to from any byte offset.
 */
import type { components, paths } from "./api-types.js";
import type { CallOptions } from "./client.js";
import type { ApiTransport } from "./transport.js";
import { unwrap } from "./transport.js";

export type BackgroundProcess = components["schemas"]["BackgroundProcess"];
export type StartProcess =
  paths["/v1/sandboxes/{id}/processes"]["post"]["requestBody"]["content"]["application/json"];
export type ProcessSignal = NonNullable<
  paths["/v1/sandboxes/{id}/processes/{pid}/signal"]["post"]["requestBody"]["content"]["application/json"]["signal"]
>;

/** Builds `polydev.sandboxes.processes`. */
export function processesApi(transport: ApiTransport) {
  return {
    /**
     * Starts a process that outlives this call.
     * @example const server = await polydev.sandboxes.processes.start(box.id, { cmd: "npm run dev" });
     */
    start: async (id: string, body: StartProcess, call: CallOptions = {}): Promise<BackgroundProcess> =>
      unwrap(
        await transport.api().POST("/v1/sandboxes/{id}/processes", {
          params: { path: { id } },
          body,
          signal: call.signal,
        }),
      ),
    /** @example const { items } = await polydev.sandboxes.processes.list(box.id); */
    list: async (id: string, call: CallOptions = {}) =>
      unwrap(
        await transport
          .api()
          .GET("/v1/sandboxes/{id}/processes", { params: { path: { id } }, signal: call.signal }),
      ),
    /** @example const { state, exitCode } = await polydev.sandboxes.processes.get(box.id, server.id); */
    get: async (id: string, pid: string, call: CallOptions = {}): Promise<BackgroundProcess> =>
      unwrap(
        await transport.api().GET("/v1/sandboxes/{id}/processes/{pid}", {
          params: { path: { id, pid } },
          signal: call.signal,
        }),
      ),
    /**
     * Sends a signal (default SIGTERM).
     * @example await polydev.sandboxes.processes.signal(box.id, server.id, "SIGINT");
     */
    signal: async (
      id: string,
      pid: string,
      signal: ProcessSignal = "SIGTERM",
      call: CallOptions = {},
    ): Promise<BackgroundProcess> =>
      unwrap(
        await transport.api().POST("/v1/sandboxes/{id}/processes/{pid}/signal", {
          params: { path: { id, pid } },
          body: { signal },
          signal: call.signal,
        }),
      ),
    /**
     * The process's combined output as raw bytes from `offset`; with `follow` the stream stays
     * open until the process exits.
     * @example const log = await new Response(await polydev.sandboxes.processes.output(box.id, server.id)).text();
     */
    output: async (
      id: string,
      pid: string,
      options: CallOptions & { offset?: number; follow?: boolean } = {},
    ): Promise<ReadableStream<Uint8Array>> => {
      const query = new URLSearchParams({
        offset: String(options.offset ?? 0),
        follow: options.follow ? "true" : "false",
      });
      const response = await transport.raw(
        `/v1/sandboxes/${encodeURIComponent(id)}/processes/${encodeURIComponent(pid)}/output?${query}`,
        options.signal ? { signal: options.signal } : {},
      );
      if (!response.body) throw new Error("the output answer had no body");
      return response.body;
    },
  };
}
