import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { requestJson } from "../api/http";
import type { CreateSandbox, Sandbox, SandboxLogs, SandboxStats } from "../api/types";

const STATS_INTERVAL_MS = 3000;
const enc = encodeURIComponent;

export const sandboxesKey = ["sandboxes"] as const;

export const sandboxListQuery = () =>
  queryOptions({
    queryKey: [...sandboxesKey, "list"],
    queryFn: ({ signal }) =>
      requestJson<{ items: Sandbox[]; nextCursor: string | null }>("GET", "/v1/sandboxes", {
        query: { limit: 200 },
        signal,
      }),
    // Sandboxes in transition change state on their own; look again until they settle.
    refetchInterval: (query) =>
      query.state.data?.items.some((s) => s.state === "creating" || s.state === "destroying") ? 1000 : 10_000,
  });

export const sandboxQuery = (id: string) =>
  queryOptions({
    queryKey: [...sandboxesKey, "one", id],
    queryFn: ({ signal }) => requestJson<Sandbox>("GET", `/v1/sandboxes/${enc(id)}`, { signal }),
    refetchInterval: (query) =>
      query.state.data?.state === "creating" || query.state.data?.state === "destroying" ? 1000 : 15_000,
  });

/** Live use of a running sandbox, polled every few seconds. */
export const sandboxStatsQuery = (id: string, running: boolean) =>
  queryOptions({
    queryKey: [...sandboxesKey, "stats", id],
    queryFn: ({ signal }) => requestJson<SandboxStats>("GET", `/v1/sandboxes/${enc(id)}/stats`, { signal }),
    enabled: running,
    refetchInterval: running ? STATS_INTERVAL_MS : false,
    retry: false,
  });

export const sandboxLogsQuery = (id: string) =>
  queryOptions({
    queryKey: [...sandboxesKey, "logs", id],
    queryFn: ({ signal }) => requestJson<SandboxLogs>("GET", `/v1/sandboxes/${enc(id)}/logs`, { signal }),
    refetchInterval: 5000,
  });

export function useCreateSandbox() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateSandbox) => requestJson<Sandbox>("POST", "/v1/sandboxes", { body }),
    onSettled: () => client.invalidateQueries({ queryKey: sandboxesKey }),
  });
}

export function useDestroySandbox() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => requestJson<Sandbox>("DELETE", `/v1/sandboxes/${enc(id)}`),
    onSettled: () => client.invalidateQueries({ queryKey: sandboxesKey }),
  });
}
