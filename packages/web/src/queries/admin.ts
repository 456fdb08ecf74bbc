import { infiniteQueryOptions, queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { polydev } from "../api/polydev";

const adminKey = ["admin"] as const;

export const adminUsersQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "users"],
    queryFn: ({ signal }) => polydev.admin.users.list({ signal }),
  });

/** Every user's sandboxes, a page at a time (newest first); "load more" fetches the next page. */
export const adminSandboxesQuery = () =>
  infiniteQueryOptions({
    queryKey: [...adminKey, "sandboxes"],
    queryFn: ({ signal, pageParam }) =>
      polydev.admin.sandboxes(pageParam === undefined ? {} : { cursor: pageParam }, { signal }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (page) => page.nextCursor ?? undefined,
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
