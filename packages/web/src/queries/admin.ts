import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { requestJson } from "../api/http";
import type { AdminStats, AdminUser, Sandbox } from "../api/types";

const adminKey = ["admin"] as const;

export const adminUsersQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "users"],
    queryFn: ({ signal }) => requestJson<{ items: AdminUser[] }>("GET", "/v1/admin/users", { signal }),
  });

export const adminSandboxesQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "sandboxes"],
    queryFn: ({ signal }) =>
      requestJson<{ items: (Sandbox & { ownerName: string })[] }>("GET", "/v1/admin/sandboxes", { signal }),
    refetchInterval: 10_000,
  });

export const adminStatsQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "stats"],
    queryFn: ({ signal }) => requestJson<AdminStats>("GET", "/v1/admin/stats", { signal }),
    refetchInterval: 30_000,
  });

export interface CreateUser {
  name: string;
  role: "admin" | "user";
  password?: string;
}

export function useCreateUser() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateUser) =>
      requestJson<{ user: AdminUser; apiKey: string }>("POST", "/v1/admin/users", { body }),
    onSettled: () => client.invalidateQueries({ queryKey: adminKey }),
  });
}
