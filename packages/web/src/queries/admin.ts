import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { polydev } from "../api/polydev";

const adminKey = ["admin"] as const;

export const adminUsersQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "users"],
    queryFn: ({ signal }) => polydev.admin.users.list({ signal }),
  });

export const adminSandboxesQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "sandboxes"],
    queryFn: ({ signal }) => polydev.admin.sandboxes({}, { signal }),
    refetchInterval: 10_000,
  });

export const adminStatsQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "stats"],
    queryFn: ({ signal }) => polydev.admin.stats({ signal }),
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
    mutationFn: (body: CreateUser) => polydev.admin.users.create(body),
    onSettled: () => client.invalidateQueries({ queryKey: adminKey }),
  });
}
