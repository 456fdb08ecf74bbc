import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { polydev } from "../api/polydev";
import type { CreateSandbox } from "../api/types";

const STATS_INTERVAL_MS = 3000;

export const sandboxesKey = ["sandboxes"] as const;

export const sandboxListQuery = () =>
  queryOptions({
    queryKey: [...sandboxesKey, "list"],
    queryFn: ({ signal }) => polydev.sandboxes.list({ signal }),
    // Sandboxes in transition change state on their own; look again until they settle.
    refetchInterval: (query) =>
      query.state.data?.items.some((s) => s.state === "creating" || s.state === "destroying") ? 1000 : 10_000,
  });

export const sandboxQuery = (id: string) =>
  queryOptions({
    queryKey: [...sandboxesKey, "one", id],
    queryFn: ({ signal }) => polydev.sandboxes.get(id, { signal }),
    refetchInterval: (query) =>
      query.state.data?.state === "creating" || query.state.data?.state === "destroying" ? 1000 : 15_000,
  });

/** Live use of a running sandbox, polled every few seconds. */
export const sandboxStatsQuery = (id: string, running: boolean) =>
  queryOptions({
    queryKey: [...sandboxesKey, "stats", id],
    queryFn: ({ signal }) => polydev.sandboxes.stats(id, { signal }),
    enabled: running,
    // The first figure needs two samples, so the second comes sooner.
    refetchInterval: (query) =>
      !running ? false : query.state.dataUpdateCount < 2 ? 1000 : STATS_INTERVAL_MS,
    retry: false,
  });

export const sandboxLogsQuery = (id: string) =>
  queryOptions({
    queryKey: [...sandboxesKey, "logs", id],
    queryFn: ({ signal }) => polydev.sandboxes.logs(id, { signal }),
    refetchInterval: 5000,
  });

/** The server's driver features: which of stop, start and fork the server can do. */
export const serverFeaturesQuery = () =>
  queryOptions({
    queryKey: ["server", "features"],
    queryFn: async ({ signal }) => (await polydev.health({ signal })).features,
    staleTime: 5 * 60_000,
  });

/** Every driver the server runs, the default first, each with its own features. */
export const serverDriversQuery = () =>
  queryOptions({
    queryKey: ["server", "drivers"],
    queryFn: async ({ signal }) => (await polydev.health({ signal })).drivers,
    staleTime: 5 * 60_000,
  });

export function useCreateSandbox() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateSandbox) => polydev.sandboxes.create(body),
    onSettled: () => client.invalidateQueries({ queryKey: sandboxesKey }),
  });
}

export function useDestroySandbox() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => polydev.sandboxes.destroy(id),
    onSettled: () => client.invalidateQueries({ queryKey: sandboxesKey }),
  });
}

export type PowerAction = "hibernate" | "resume" | "stop" | "start";

/** Hibernate (freeze), resume (thaw), stop (end processes, keep the disk) or start a sandbox. */
export function useSandboxPower() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, action }: { id: string; action: PowerAction }) => polydev.sandboxes[action](id),
    onSettled: () => client.invalidateQueries({ queryKey: sandboxesKey }),
  });
}

/** New sandboxes from copies of this one's disk. */
export function useForkSandbox() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, count }: { id: string; count: number }) => polydev.sandboxes.fork(id, { count }),
    onSettled: () => client.invalidateQueries({ queryKey: sandboxesKey }),
  });
}
