/**
 * Egress policy of an allow-list sandbox: its allow/deny lists and presets (changeable while it
 * runs, effective on the next connection), the audit log of what it connected to, and the named
 * presets an admin defines.
 */
import type { CallOptions } from "./client.js";
import { errorFromResponse } from "./errors.js";
import { readSse } from "./sse.js";
import type { ApiTransport } from "./transport.js";

/**
 * A rule entry: a name (`registry.example.com`), a wildcard (`*.example.com`, strictly below it),
 * `*`, an IP address or a CIDR (`10.20.0.0/16`). `deny` wins over `allow`.
 */
export type EgressRule = string;

/** What a sandbox is created with: a mode, or an allow-list with its rules. */
export type NetworkSetting =
  | "none"
  | "egress"
  | { mode: "none" | "egress" }
  | { mode: "allowlist"; allow: EgressRule[]; deny?: EgressRule[]; presets?: string[] };

/** An allow-list sandbox's own rules (`Sandbox.egressPolicy`). */
export interface EgressPolicy {
  allow: EgressRule[];
  deny: EgressRule[];
  presets: string[];
}

/** `GET /v1/sandboxes/:id/network`: the own rules and what applies with the presets folded in. */
export interface SandboxNetwork extends EgressPolicy {
  mode: "none" | "egress" | "allowlist";
  effective: { allow: EgressRule[]; deny: EgressRule[] };
}

/** A change to an allow-list sandbox's policy; what is left out stays as it is. */
export interface NetworkUpdate {
  allow?: EgressRule[];
  deny?: EgressRule[];
  presets?: string[];
}

/** One connection or DNS query of an allow-list sandbox, as the server decided it. */
export interface EgressAuditEvent {
  id: number;
  /** ISO time */
  at: string;
  kind: "tcp" | "dns";
  /** The name it asked for (SNI, Host or the DNS question), when there was one. */
  host: string | null;
  address: string;
  port: number;
  decision: "allowed" | "denied";
  /** A stable word: allowed_name, not_listed, private_address, sni_mismatch, dns_refused, … */
  reason: string;
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
}

export interface NetworkPreset {
  name: string;
  description: string;
  allow: EgressRule[];
  deny: EgressRule[];
}

export interface PutNetworkPreset {
  description?: string;
  allow: EgressRule[];
  deny?: EgressRule[];
}

const enc = encodeURIComponent;

async function json<T>(
  transport: ApiTransport,
  method: string,
  path: string,
  body: unknown,
  call: CallOptions,
): Promise<T> {
  const response = await transport.raw(path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    ...(call.signal ? { signal: call.signal } : {}),
  });
  return (await response.json()) as T;
}

/** Builds `polydev.sandboxes.network`. */
export function networkApi(transport: ApiTransport) {
  return {
    /**
     * The sandbox's mode, its own rules and presets, and the effective lists.
     * @example const { effective } = await polydev.sandboxes.network.get(box.id);
     */
    get: (id: string, call: CallOptions = {}): Promise<SandboxNetwork> =>
      json(transport, "GET", `/v1/sandboxes/${enc(id)}/network`, undefined, call),
    /**
     * Changes an allow-list sandbox's rules; the next connection follows them, nothing restarts.
     * Throws ConflictError for a sandbox created with another mode.
     * @example await polydev.sandboxes.network.update(box.id, { allow: ["registry.npmjs.org"], presets: ["github"] });
     */
    update: (id: string, change: NetworkUpdate, call: CallOptions = {}): Promise<SandboxNetwork> =>
      json(transport, "PATCH", `/v1/sandboxes/${enc(id)}/network`, change, call),
    /**
     * A page of the audit log, newest first (default 100); pass the last event's `id` as `before`
     * for the page after it.
     * @example const { events } = await polydev.sandboxes.network.audit(box.id, { limit: 20 });
     */
    audit: (
      id: string,
      options: CallOptions & { limit?: number; before?: number } = {},
    ): Promise<{ events: EgressAuditEvent[] }> => {
      const query = new URLSearchParams();
      if (options.limit !== undefined) query.set("limit", String(options.limit));
      if (options.before !== undefined) query.set("before", String(options.before));
      const suffix = query.size > 0 ? `?${query}` : "";
      return json(transport, "GET", `/v1/sandboxes/${enc(id)}/network/audit${suffix}`, undefined, options);
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
    list: (call: CallOptions = {}): Promise<{ presets: NetworkPreset[] }> =>
      json(transport, "GET", "/v1/network-presets", undefined, call),
  };
}

/** The admin's network calls, spread into `polydev.admin`. */
export function networkAdminApi(transport: ApiTransport) {
  return {
    /**
     * Creates or replaces a named preset (`^[a-z0-9][a-z0-9-]{0,62}$`).
     * @example await polydev.admin.putNetworkPreset("internal-git", { description: "our Git host", allow: ["git.example.com"] });
     */
    putNetworkPreset: (
      name: string,
      preset: PutNetworkPreset,
      call: CallOptions = {},
    ): Promise<NetworkPreset> =>
      json(transport, "PUT", `/v1/admin/network-presets/${enc(name)}`, preset, call),
    /**
     * Throws ConflictError while a sandbox uses it.
     * @example await polydev.admin.deleteNetworkPreset("internal-git");
     */
    deleteNetworkPreset: async (name: string, call: CallOptions = {}): Promise<void> => {
      const response = await transport.raw(`/v1/admin/network-presets/${enc(name)}`, {
        method: "DELETE",
        ...(call.signal ? { signal: call.signal } : {}),
      });
      await response.body?.cancel();
    },
    /**
     * What a user's sandboxes get when created without `network`; `null` clears it.
     * @example await polydev.admin.setUserNetworkDefault(user.id, { mode: "allowlist", allow: [], presets: ["package-registries"] });
     */
    setUserNetworkDefault: (
      userId: string,
      network: NetworkSetting | null,
      call: CallOptions = {},
    ): Promise<{ network: NetworkSetting | null }> =>
      json(transport, "PUT", `/v1/admin/users/${enc(userId)}/network-default`, network, call),
    /** @example const { network } = await polydev.admin.getUserNetworkDefault(user.id); */
    getUserNetworkDefault: (
      userId: string,
      call: CallOptions = {},
    ): Promise<{ network: NetworkSetting | null }> =>
      json(transport, "GET", `/v1/admin/users/${enc(userId)}/network-default`, undefined, call),
  };
}
