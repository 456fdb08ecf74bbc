import type { PlanLimits } from "@polydev/sdk";
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

/** Background jobs' last runs: slow-moving, so a minute between refreshes is enough. */
export const adminJobsQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "jobs"],
    queryFn: ({ signal }) => polydev.admin.jobs({ signal }),
    refetchInterval: 60_000,
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

/** Any user's sandbox, for an admin: record and owner, then its lifecycle log. */
export const adminSandboxQuery = (id: string) =>
  queryOptions({
    queryKey: [...adminKey, "sandbox", id],
    queryFn: ({ signal }) => polydev.admin.sandbox(id, { signal }),
    refetchInterval: 5_000,
  });

export const adminSandboxLogsQuery = (id: string) =>
  queryOptions({
    queryKey: [...adminKey, "sandbox", id, "logs"],
    queryFn: ({ signal }) => polydev.admin.sandboxLogs(id, { signal }),
    refetchInterval: 5_000,
  });

export function useAdminDestroySandbox() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => polydev.admin.destroySandbox(id),
    onSettled: () => client.invalidateQueries({ queryKey: adminKey }),
  });
}

export const adminPlansQuery = () =>
  queryOptions({
    queryKey: [...adminKey, "plans"],
    queryFn: ({ signal }) => polydev.admin.plans.list({ signal }),
  });

export function usePutPlan() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ name, description, limits }: { name: string; description: string; limits: PlanLimits }) =>
      polydev.admin.plans.put(name, { description, limits }),
    onSettled: () => client.invalidateQueries({ queryKey: adminKey }),
  });
}

export function useDeletePlan() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (name: string) => polydev.admin.plans.delete(name),
    onSettled: () => client.invalidateQueries({ queryKey: adminKey }),
  });
}

export function useAssignPlan() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ userId, plan }: { userId: string; plan: string | null }) =>
      polydev.admin.users.setPlan(userId, plan),
    onSettled: () => client.invalidateQueries({ queryKey: adminKey }),
  });
}
