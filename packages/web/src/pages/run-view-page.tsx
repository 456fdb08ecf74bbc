import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { FINAL_RUN_STATES } from "../api/types";
import { ErrorNotice } from "../components/error-notice";
import { RunChanges } from "../components/run-changes";
import { RunOutput } from "../components/run-output";
import { RunReplyBox } from "../components/run-reply-box";
import { StateBadge } from "../components/state-badge";
import { runQuery, useCancelRun, useReplyToGroup, useReplyToRun, useRunEvents } from "../queries/runs";
import { Link } from "../router";

/**
 * One run, or a group side by side; a finished run's events replay from the start. Each run reads
 * as a conversation: a follow-up sent from its reply box (or to the whole group) continues it.
 */
export function RunViewPage({ runIds }: { runIds: string[] }) {
  const [replay, setReplay] = useState(0);
  // Bumped when a follow-up went to the whole group: every column follows its new turn.
  const [groupFollow, setGroupFollow] = useState(0);
  const first = useQuery(runQuery(runIds[0] ?? ""));
  const groupReply = useReplyToGroup();
  const groupId = runIds.length > 1 ? first.data?.groupId : null;
  return (
    <>
      <div className="page-head page-head-row">
        <div>
          <p className="crumb-line">
            <Link href="/runs">Runs</Link> /
          </p>
          <h1>{runIds.length > 1 ? `${runIds.length} agents side by side` : "Run"}</h1>
          {first.data ? <p className="prompt-quote">{first.data.prompt}</p> : null}
        </div>
        <div className="head-side">
          {first.data?.groupId ? (
            <Link
              href={`/groups/${encodeURIComponent(first.data.groupId)}`}
              className="button button-primary"
            >
              Compare and keep
            </Link>
          ) : null}
          <button type="button" className="button" onClick={() => setReplay((n) => n + 1)}>
            Replay from the start
          </button>
        </div>
      </div>
      <div className={`run-columns run-columns-${Math.min(runIds.length, 4)}`}>
        {runIds.map((id) => (
          <RunColumn key={`${id}-${replay}`} id={id} replay={replay} groupFollow={groupFollow} />
        ))}
      </div>
      {groupId ? (
        <section className="card" aria-label="Reply to every agent">
          <h2>Reply to every agent</h2>
          <RunReplyBox
            label="Follow-up for every agent"
            ready={first.data ? FINAL_RUN_STATES.includes(first.data.state) : false}
            pending={groupReply.isPending}
            error={groupReply.error}
            send={async (prompt) => {
              await groupReply.mutateAsync({ groupId, prompt });
              setGroupFollow((n) => n + 1);
            }}
          />
        </section>
      ) : null}
    </>
  );
}

function RunColumn({ id, replay, groupFollow }: { id: string; replay: number; groupFollow: number }) {
  const run = useQuery(runQuery(id));
  const [follow, setFollow] = useState(0);
  const { events, stream } = useRunEvents(id, replay, follow + groupFollow);
  const cancel = useCancelRun();
  const reply = useReplyToRun();
  const [tab, setTab] = useState<"output" | "changes">("output");
  const usage = [...events].reverse().find((e) => e.type === "usage");
  const final = run.data ? FINAL_RUN_STATES.includes(run.data.state) : false;
  return (
    <section className="card run-column" aria-label={`Run ${id}`} data-run={id}>
      <header className="card-head">
        <h2>
          {run.data?.agent ?? "…"} {run.data ? <StateBadge state={run.data.state} /> : null}
        </h2>
        {run.data && !final ? (
          <button
            type="button"
            className="button button-small button-danger"
            onClick={() => cancel.mutate(id)}
            disabled={cancel.isPending}
          >
            {cancel.isPending ? "Cancelling…" : "Cancel"}
          </button>
        ) : null}
      </header>
      <p className="muted small">
        <span className="mono">{id}</span>
        {run.data ? (
          <>
            {" "}
            · in <Link href={`/sandboxes/${run.data.sandboxId}`}>{run.data.sandboxId}</Link>
          </>
        ) : null}
        {/* An ended run's usage sums all its turns; while one runs, its latest step shows. */}
        {final && run.data
          ? ` · ${run.data.usage.inputTokens} in / ${run.data.usage.outputTokens} out tokens`
          : usage?.type === "usage"
            ? ` · ${usage.inputTokens} in / ${usage.outputTokens} out tokens`
            : null}
        {stream === "reconnecting" ? " · reconnecting…" : null}
      </p>
      {run.error ? <ErrorNotice error={run.error} title="Could not load the run" /> : null}
      {stream === "failed" && events.length === 0 ? (
        <div className="notice notice-error" role="alert">
          The event stream could not be opened. Reload the page to try again.
        </div>
      ) : null}
      {cancel.error ? <ErrorNotice error={cancel.error} title="Could not cancel" /> : null}
      <div className="tabs" role="tablist" aria-label={`Run ${id}`}>
        {(["output", "changes"] as const).map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            className="tab"
            aria-selected={tab === t}
            onClick={() => setTab(t)}
          >
            {t === "output" ? "Output" : "Changes"}
          </button>
        ))}
      </div>
      {tab === "output" ? (
        <>
          <RunOutput events={events} prompt={run.data?.prompt} />
          <RunReplyBox
            label={`Follow-up for ${run.data?.agent ?? "the agent"}`}
            ready={final && stream !== "connecting"}
            pending={reply.isPending}
            error={reply.error}
            send={async (prompt) => {
              await reply.mutateAsync({ id, prompt });
              setFollow((n) => n + 1);
            }}
          />
        </>
      ) : (
        <RunChanges id={id} ended={final} />
      )}
    </section>
  );
}
