import { infiniteQueryOptions, queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { polydev } from "../api/polydev";
import type { AuditQuery, CreateApiKey } from "../api/types";

const keysKey = ["api-keys"] as const;

export const apiKeyListQuery = () =>
  queryOptions({
    queryKey: keysKey,
    queryFn: ({ signal }) => polydev.keys.list({ signal }),
  });

export function useCreateApiKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateApiKey) => polydev.keys.create(body),
    onSettled: () => client.invalidateQueries({ queryKey: keysKey }),
  });
}

export function useRevokeApiKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => polydev.keys.revoke(id),
    onSettled: () => client.invalidateQueries({ queryKey: keysKey }),
  });
}

/** The audit log, newest first, a page at a time. */
export const auditQuery = (filter: Omit<AuditQuery, "cursor" | "limit">) =>
  infiniteQueryOptions({
    queryKey: ["admin", "audit", filter],
    queryFn: ({ signal, pageParam }) =>
      polydev.admin.audit({ ...filter, limit: 50, ...(pageParam ? { cursor: pageParam } : {}) }, { signal }),
    initialPageParam: "",
    getNextPageParam: (page) => page.nextCursor ?? undefined,
  });
