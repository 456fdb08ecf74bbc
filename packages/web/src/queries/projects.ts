import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { polydev } from "../api/polydev";
import type { AddProject } from "../api/types";

const projectsKey = ["projects"] as const;

/** A sandbox's projects: the git repositories a run can work in. */
export const projectListQuery = (sandboxId: string) =>
  queryOptions({
    queryKey: [...projectsKey, sandboxId],
    queryFn: ({ signal }) => polydev.projects.list(sandboxId, { signal }),
    enabled: sandboxId !== "",
    retry: false,
  });

export function useAddProject() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ sandboxId, body }: { sandboxId: string; body: AddProject }) =>
      polydev.projects.add(sandboxId, body),
    onSettled: (_data, _error, { sandboxId }) =>
      client.invalidateQueries({ queryKey: [...projectsKey, sandboxId] }),
  });
}
