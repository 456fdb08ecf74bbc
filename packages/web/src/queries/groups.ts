import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import type { KeepRequest } from "../api/keep";
import { keepRun } from "../api/keep";
import { polydev } from "../api/polydev";
import type { Run } from "../api/types";
import { AGENTS, FINAL_RUN_STATES } from "../api/types";

/** A group has at most 8 agents (POST /v1/runs); one page holds them all. */
const GROUP_PAGE = 50;

/** A group's agents start together; a fixed order keeps each one in its column between refreshes. */
function byAgent(a: Run, b: Run): number {
  return (
    AGENTS.indexOf(a.agent) - AGENTS.indexOf(b.agent) ||
    a.createdAt.localeCompare(b.createdAt) ||
    a.id.localeCompare(b.id)
  );
}

/** The runs of one group, in the dashboard's order of agents. */
export const groupRunsQuery = (groupId: string) =>
  queryOptions({
    queryKey: ["runs", "group", groupId],
    queryFn: async ({ signal }) => {
      const page = await polydev.runs.list({ groupId, limit: GROUP_PAGE }, { signal });
      return [...page.items].sort(byAgent);
    },
    // Agents still working change state on their own; look again until every one has ended.
    refetchInterval: (query) =>
      query.state.data?.some((r) => !FINAL_RUN_STATES.includes(r.state)) ? 1500 : false,
  });

export function useKeepRun() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: KeepRequest }) => keepRun(id, body),
    // The changes of a kept run carry the keep; the group's other runs report it too.
    onSettled: () => client.invalidateQueries({ queryKey: ["runs", "changes"] }),
  });
}
