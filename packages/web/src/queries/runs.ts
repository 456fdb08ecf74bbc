import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { apiUrl } from "../api/http";
import { polydev } from "../api/polydev";
import type { Agent, Run, RunEvent } from "../api/types";
import { FINAL_RUN_STATES, RUN_EVENT_TYPES } from "../api/types";

const runsKey = ["runs"] as const;
const enc = encodeURIComponent;

export const runListQuery = () =>
  queryOptions({
    queryKey: [...runsKey, "list"],
    queryFn: ({ signal }) => polydev.runs.list({ limit: 100 }, { signal }),
    refetchInterval: (query) =>
      query.state.data?.items.some((r) => !FINAL_RUN_STATES.includes(r.state)) ? 2000 : 15_000,
  });

export const runQuery = (id: string) =>
  queryOptions({
    queryKey: [...runsKey, "one", id],
    queryFn: ({ signal }) => polydev.runs.get(id, { signal }),
  });

export interface StartRun {
  agents: Agent[];
  prompt: string;
  sandboxId?: string;
  /** The project folder (e.g. projects/app) the agents work in; each agent of a group gets a copy. */
  project?: string;
  /** Run in each agent's copy when it ends; default the project's own check. */
  check?: string;
}

/** Starts one run, or a group when several agents are chosen; answers the runs' ids. */
export function useStartRun() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (input: StartRun): Promise<Run[]> => {
      const [only] = input.agents;
      const body = {
        prompt: input.prompt,
        ...(input.sandboxId ? { sandboxId: input.sandboxId } : {}),
        ...(input.project ? { project: input.project } : {}),
        ...(input.project && input.check ? { check: input.check } : {}),
        ...(input.agents.length === 1 && only ? { agent: only } : { agents: input.agents }),
      };
      const answer = await polydev.runs.create(body);
      return "runs" in answer ? answer.runs : [answer];
    },
    onSettled: () => client.invalidateQueries({ queryKey: runsKey }),
  });
}

export function useCancelRun() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => polydev.runs.cancel(id),
    onSettled: () => client.invalidateQueries({ queryKey: runsKey }),
  });
}

/** Sends a follow-up to a finished run; its events then continue the run's stream. */
export function useReplyToRun() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (input: { id: string; prompt: string }) => polydev.runs.reply(input.id, input.prompt),
    onSettled: () => client.invalidateQueries({ queryKey: runsKey }),
  });
}

/** Sends the same follow-up to every run of a group. */
export function useReplyToGroup() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (input: { groupId: string; prompt: string }) =>
      polydev.runs.replyToGroup(input.groupId, input.prompt),
    onSettled: () => client.invalidateQueries({ queryKey: runsKey }),
  });
}

export type StreamState = "connecting" | "live" | "reconnecting" | "done" | "failed";

/**
 * A run's events as they happen; a finished run replays all of them. EventSource resumes a dropped
 * connection with Last-Event-ID by itself; `replay` (a counter) starts over from the first event.
 */
export function useRunEvents(
  id: string,
  replay = 0,
  follow = 0,
): { events: RunEvent[]; stream: StreamState } {
  const client = useQueryClient();
  const [events, setEvents] = useState<RunEvent[]>([]);
  const [stream, setStream] = useState<StreamState>("connecting");
  // What was shown survives a `follow` (a follow-up sent): the stream goes on after it.
  const shown = useRef({ key: "", lastSeq: 0 });
  useEffect(() => {
    // `follow` is read so a new value reopens the stream after the last event shown.
    void follow;
    const key = `${id}:${replay}`;
    if (shown.current.key !== key) {
      shown.current = { key, lastSeq: 0 };
      setEvents([]);
    }
    setStream("connecting");
    let lastSeq = shown.current.lastSeq;
    let lastType = "";
    const current = new EventSource(
      apiUrl(`/v1/runs/${enc(id)}/events${lastSeq > 0 ? `?after=${lastSeq}` : ""}`),
    );
    current.onopen = () => setStream("live");
    const onEvent = (message: MessageEvent<string>): void => {
      const event = JSON.parse(message.data) as RunEvent;
      if (event.seq <= lastSeq) return;
      lastSeq = event.seq;
      shown.current.lastSeq = lastSeq;
      setEvents((previous) => [...previous, event]);
      if (event.type === "status" || event.type === "done") {
        void client.invalidateQueries({ queryKey: [...runsKey, "one", id] });
      }
      // A `done` ends a turn; a later turn's events may follow in the same stream (a replay of a
      // conversation), so the stream is closed when the server ends it after a `done`.
      lastType = event.type;
      if (event.type === "done") {
        setStream("done");
        void client.invalidateQueries({ queryKey: runsKey });
      }
    };
    for (const type of RUN_EVENT_TYPES) {
      // A run's own `error` events arrive as MessageEvents on the same name as EventSource's
      // connection errors; only the former carry data.
      current.addEventListener(type, (event) => {
        if (event instanceof MessageEvent) onEvent(event);
      });
    }
    current.onerror = () => {
      if (lastType === "done") {
        current.close();
        setStream("done");
        return;
      }
      if (lastSeq > 0 && current.readyState === EventSource.CONNECTING) setStream("reconnecting");
      else if (current.readyState === EventSource.CLOSED) setStream((s) => (s === "done" ? s : "failed"));
    };
    return () => current.close();
  }, [id, replay, follow, client]);
  return { events, stream };
}

/** What a run in a project changed; asked for once the run has ended (it is recorded then). */
export const runChangesQuery = (id: string, ended: boolean) =>
  queryOptions({
    queryKey: [...runsKey, "changes", id],
    queryFn: ({ signal }) => polydev.runs.changes(id, { signal }),
    enabled: ended,
    retry: false,
  });
