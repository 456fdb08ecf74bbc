/**
 * Egress policy of an allow-list sandbox: its allow/deny lists and presets (changeable while it
 * runs, effective on the next connection), the audit log of what it connected to, and the named
 * presets an admin defines.
 */
import type { components, paths } from "./api-types.js";
import type { CallOptions } from "./client.js";
import { errorFromResponse } from "./errors.js";
import { readSse } from "./sse.js";
import type { ApiTransport } from "./transport.js";
import { unwrap } from "./transport.js";

/**
 * A rule entry: a name (`registry.example.com`), a wildcard (`*.example.com`, strictly below it),
 * `*`, an IP address or a CIDR (`10.20.0.0/16`). `deny` wins over `allow`.
 */
export type EgressRule = string;

/** What a sandbox is created with: a mode, or an allow-list with its rules. */
export type NetworkSetting = NonNullable<
  NonNullable<paths["/v1/sandboxes"]["post"]["requestBody"]>["content"]["application/json"]["network"]
>;

/** An allow-list sandbox's own rules (`Sandbox.egressPolicy`). */
export type EgressPolicy = NonNullable<components["schemas"]["Sandbox"]["egressPolicy"]>;

/** `GET /v1/sandboxes/:id/network`: the own rules and what applies with the presets folded in. */
export type SandboxNetwork = components["schemas"]["SandboxNetwork"];

/** A change to an allow-list sandbox's policy; what is left out stays as it is. */
export type NetworkUpdate =
  paths["/v1/sandboxes/{id}/network"]["patch"]["requestBody"]["content"]["application/json"];

/**
 * One connection or DNS query of an allow-list sandbox, as the server decided it: `host` is the
 * name it asked for (SNI, Host or the DNS question) when there was one; `reason` a stable word
 * (allowed_name, not_listed, private_address, sni_mismatch, dns_refused, …).
 */
export type EgressAuditEvent = components["schemas"]["EgressAuditEvent"];

export type NetworkPreset = components["schemas"]["NetworkPreset"];

export type PutNetworkPreset =
  paths["/v1/admin/network-presets/{name}"]["put"]["requestBody"]["content"]["application/json"];

/** A user's default network as the server keeps it (the object form), or null. */
export type UserNetworkDefault =
  paths["/v1/admin/users/{id}/network-default"]["get"]["responses"]["200"]["content"]["application/json"]["network"];

const enc = encodeURIComponent;

/** Builds `polydev.sandboxes.network`. */
export function networkApi(transport: ApiTransport) {
  return {
    /**
     * The sandbox's mode, its own rules and presets, and the effective lists.
     * @example const { effective } = await polydev.sandboxes.network.get(box.id);
     */
    get: async (id: string, call: CallOptions = {}): Promise<SandboxNetwork> =>
      unwrap(
        await transport
          .api()
          .GET("/v1/sandboxes/{id}/network", { params: { path: { id } }, signal: call.signal }),
      ),
    /**
     * Changes an allow-list sandbox's rules; the next connection follows them, nothing restarts.
     * Throws ConflictError for a sandbox created with another mode.
     * @example await polydev.sandboxes.network.update(box.id, { allow: ["registry.npmjs.org"], presets: ["github"] });
     */
    update: async (id: string, change: NetworkUpdate, call: CallOptions = {}): Promise<SandboxNetwork> =>
      unwrap(
        await transport.api().PATCH("/v1/sandboxes/{id}/network", {
          params: { path: { id } },
          body: change,
          signal: call.signal,
        }),
      ),
    /**
     * A page of the audit log, newest first (default 100, at most 1000); pass the oldest event's
     * `id` as `before` for the page after it.
     * @example const { events } = await polydev.sandboxes.network.audit(box.id, { limit: 20 });
     */
    audit: async (
      id: string,
      options: CallOptions & { limit?: number; before?: number } = {},
    ): Promise<{ events: EgressAuditEvent[] }> => {
      const query = {
        ...(options.limit !== undefined ? { limit: options.limit } : {}),
        ...(options.before !== undefined ? { before: options.before } : {}),
      };
      return unwrap(
        await transport.api().GET("/v1/sandboxes/{id}/network/audit", {
          params: { path: { id }, query },
          signal: options.signal,
        }),
      );
    },
    /**
     * Each new audit event as it happens, until the signal aborts or the server ends the stream.
     * `onReady` is called once the server follows the sandbox: every event after that arrives, so
     * a page read then (`audit`) plus this stream misses nothing (the stream may repeat a few).
     * @example for await (const e of polydev.sandboxes.network.auditStream(box.id, { signal })) if (e.decision === "denied") console.log(e.host, e.reason);
     */
    auditStream: (
      id: string,
      call: CallOptions & { onReady?: () => void } = {},
    ): AsyncGenerator<EgressAuditEvent> => followAudit(transport, id, call),
  };
}

async function* followAudit(
  transport: ApiTransport,
  id: string,
  call: CallOptions & { onReady?: () => void },
): AsyncGenerator<EgressAuditEvent> {
  const response = await transport.raw(`/v1/sandboxes/${enc(id)}/network/audit/stream`, {
    headers: { accept: "text/event-stream" },
    ...(call.signal ? { signal: call.signal } : {}),
  });
  if (!response.body) return;
  for await (const message of readSse(response.body)) {
    if (message.event === "egress") yield JSON.parse(message.data) as EgressAuditEvent;
    else if (message.event === "ready") call.onReady?.();
    // A stream that fails after it started says why in an `error` event, then ends.
    else if (message.event === "error") throw errorFromResponse(0, { error: JSON.parse(message.data) });
  }
}

/** Builds `polydev.networkPresets`. */
export function networkPresetsApi(transport: ApiTransport) {
  return {
    /** @example const { presets } = await polydev.networkPresets.list(); */
    list: async (call: CallOptions = {}): Promise<{ presets: NetworkPreset[] }> =>
      unwrap(await transport.api().GET("/v1/network-presets", { signal: call.signal })),
  };
}

/** The admin's network calls, spread into `polydev.admin`. */
export function networkAdminApi(transport: ApiTransport) {
  return {
    /**
     * Creates or replaces a named preset (`^[a-z0-9][a-z0-9-]{0,62}$`).
     * @example await polydev.admin.putNetworkPreset("internal-git", { description: "our Git host", allow: ["git.example.com"] });
     */
    putNetworkPreset: async (
      name: string,
      preset: PutNetworkPreset,
      call: CallOptions = {},
    ): Promise<NetworkPreset> =>
      unwrap(
        await transport.api().PUT("/v1/admin/network-presets/{name}", {
          params: { path: { name } },
          body: preset,
          signal: call.signal,
        }),
      ),
    /**
     * Throws ConflictError while a sandbox or a user's default uses it.
     * @example await polydev.admin.deleteNetworkPreset("internal-git");
     */
    deleteNetworkPreset: async (name: string, call: CallOptions = {}): Promise<void> => {
      const answer = await transport.api().DELETE("/v1/admin/network-presets/{name}", {
        params: { path: { name } },
        signal: call.signal,
        parseAs: "stream",
      });
      unwrap(answer);
      await answer.response.body?.cancel();
    },
    /**
     * What a user's sandboxes get when created without `network`; `null` clears it.
     * @example await polydev.admin.setUserNetworkDefault(user.id, { mode: "allowlist", allow: [], presets: ["package-registries"] });
     */
    setUserNetworkDefault: async (
      userId: string,
      network: NetworkSetting | null,
      call: CallOptions = {},
    ): Promise<{ network: UserNetworkDefault }> =>
      unwrap(
        await transport.api().PUT("/v1/admin/users/{id}/network-default", {
          params: { path: { id: userId } },
          body: { network },
          signal: call.signal,
        }),
      ),
    /** @example const { network } = await polydev.admin.getUserNetworkDefault(user.id); */
    getUserNetworkDefault: async (
      userId: string,
      call: CallOptions = {},
    ): Promise<{ network: UserNetworkDefault }> =>
      unwrap(
        await transport.api().GET("/v1/admin/users/{id}/network-default", {
          params: { path: { id: userId } },
          signal: call.signal,
        }),
      ),
  };
}
