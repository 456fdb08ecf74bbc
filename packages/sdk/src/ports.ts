/**
 * Ports listening in a sandbox, and preview URLs: a signed link a browser opens on the server's
 * separate preview origin, or the API form (`fetch`) that programs use with their key.
 */
import type { components, paths } from "./api-types.js";
import type { CallOptions } from "./client.js";
import type { ApiTransport } from "./transport.js";
import { unwrap } from "./transport.js";

export type ListeningPort = components["schemas"]["ListeningPort"];
export type PreviewLink = components["schemas"]["PreviewLink"];
export type PreviewLinkOptions = NonNullable<
  paths["/v1/sandboxes/{id}/ports/{port}/preview-link"]["post"]["requestBody"]
>["content"]["application/json"];

/** Builds `polydev.sandboxes.ports`. */
export function portsApi(transport: ApiTransport) {
  return {
    /**
     * The TCP ports listening in the sandbox, with the process holding each when known.
     * @example const { items } = await polydev.sandboxes.ports.list(box.id); // [{ port: 3000, address: "0.0.0.0", process: { pid: 12, name: "node" } }]
     */
    list: async (id: string, call: CallOptions = {}) =>
      unwrap(
        await transport
          .api()
          .GET("/v1/sandboxes/{id}/ports", { params: { path: { id } }, signal: call.signal }),
      ),
    /**
     * A short-lived signed link that opens the port in a browser (on the preview origin). With
     * `share: true` anyone holding it may open it until it expires (`expiresIn`, seconds).
     * @example const { url } = await polydev.sandboxes.ports.previewLink(box.id, 3000);
     */
    previewLink: async (
      id: string,
      port: number,
      options: PreviewLinkOptions = {},
      call: CallOptions = {},
    ): Promise<PreviewLink> =>
      unwrap(
        await transport.api().POST("/v1/sandboxes/{id}/ports/{port}/preview-link", {
          params: { path: { id, port: String(port) } },
          body: options,
          signal: call.signal,
        }),
      ),
    /**
     * A request to the port through the API (bearer key); bodies stream both ways. A non-2xx
     * answer throws like every call (the sandbox's own 404 too: its status is the error's).
     * @example const page = await polydev.sandboxes.ports.fetch(box.id, 3000, "/api/health");
     */
    fetch: (id: string, port: number, path = "/", init: RequestInit = {}): Promise<Response> =>
      transport.raw(
        `/v1/sandboxes/${encodeURIComponent(id)}/ports/${port}${path.startsWith("/") ? path : `/${path}`}`,
        init,
      ),
  };
}
