/** An allow-list sandbox's egress policy, the presets, and its audit log (paged, then live). */
import type { EgressAuditEvent, NetworkUpdate } from "@polydev/sdk";
import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { apiUrl } from "../api/http";
import { polydev } from "../api/polydev";
import { sandboxesKey } from "./sandboxes";

const enc = encodeURIComponent;
/** How many audit rows the page keeps; older ones are a `before` page away in the API. */
const AUDIT_ROWS = 200;

export const sandboxNetworkQuery = (id: string) =>
  queryOptions({
    queryKey: [...sandboxesKey, "network", id],
    queryFn: ({ signal }) => polydev.sandboxes.network.get(id, { signal }),
  });

export const networkPresetsQuery = () =>
  queryOptions({
    queryKey: ["network-presets"],
    queryFn: ({ signal }) => polydev.networkPresets.list({ signal }),
    staleTime: 60_000,
  });

export function useUpdateNetwork(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (change: NetworkUpdate) => polydev.sandboxes.network.update(id, change),
    onSuccess: (policy) => client.setQueryData(sandboxNetworkQuery(id).queryKey, policy),
    onSettled: () => client.invalidateQueries({ queryKey: [...sandboxesKey, "one", id] }),
  });
}

export type AuditStream = "connecting" | "live" | "reconnecting" | "failed";

/**
 * The newest audit events, newest first: each new one as the server sends it, and the last page,
 * read again each time the stream (re)starts following, so nothing between the two is missed.
 * EventSource reconnects by itself; rows already shown are not added twice.
 */
export function useEgressAudit(id: string): {
  events: EgressAuditEvent[];
  stream: AuditStream;
  error: unknown;
} {
  const client = useQueryClient();
  const pageKey = [...sandboxesKey, "audit", id];
  const page = useQuery({
    queryKey: pageKey,
    queryFn: ({ signal }) => polydev.sandboxes.network.audit(id, { limit: 100, signal }),
    staleTime: Number.POSITIVE_INFINITY,
  });
  const [live, setLive] = useState<EgressAuditEvent[]>([]);
  const [stream, setStream] = useState<AuditStream>("connecting");
  useEffect(() => {
    setLive([]);
    setStream("connecting");
    const source = new EventSource(apiUrl(`/v1/sandboxes/${enc(id)}/network/audit/stream`));
    // `ready` comes once the server follows the sandbox; what happened before it is in the page.
    source.addEventListener("ready", () => {
      setStream("live");
      void client.invalidateQueries({ queryKey: [...sandboxesKey, "audit", id] });
    });
    source.addEventListener("egress", (message) => {
      if (!(message instanceof MessageEvent)) return;
      const event = JSON.parse(String(message.data)) as EgressAuditEvent;
      setLive((previous) =>
        previous.some((e) => e.id === event.id) ? previous : [event, ...previous].slice(0, AUDIT_ROWS),
      );
    });
    source.onerror = () => setStream(source.readyState === EventSource.CLOSED ? "failed" : "reconnecting");
    return () => source.close();
  }, [id, client]);
  const seen = new Set(live.map((e) => e.id));
  const events = [...live, ...(page.data?.events ?? []).filter((e) => !seen.has(e.id))]
    .sort((a, b) => b.id - a.id)
    .slice(0, AUDIT_ROWS);
  return { events, stream, error: page.error };
}
