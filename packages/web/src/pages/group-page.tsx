import "../components/group-compare.css";
import { useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { useId, useState } from "react";
import type { Run } from "../api/types";
import { FINAL_RUN_STATES } from "../api/types";
import { AgentCompareCard } from "../components/agent-compare-card";
import { agentLabel } from "../components/agent-labels";
import type { DiffLayout } from "../components/diff-view";
import { DiffView } from "../components/diff-view";
import { ErrorNotice } from "../components/error-notice";
import { errorCode } from "../queries/errors";
import { groupRunsQuery } from "../queries/groups";
import { runChangesQuery } from "../queries/runs";
import { Link } from "../router";

/**
 * A group's agents side by side: what each one did, what it cost, whether its check passed, and
 * its diff; "Keep this one" applies the winner's change to the project.
 */
export function GroupPage({ groupId }: { groupId: string }) {
  const runs = useQuery(groupRunsQuery(groupId));
  const [layout, setLayout] = useState<DiffLayout>("side-by-side");
  const [push, setPush] = useState(false);
  const pushId = useId();
  const items = runs.data ?? [];
  const [first] = items;
  const ended = items.filter((r) => FINAL_RUN_STATES.includes(r.state)).length;
  return (
    <>
      <div className="page-head page-head-row">
        <div>
          <p className="crumb-line">
            <Link href="/runs">Runs</Link> /
          </p>
          <h1>{items.length > 0 ? `Compare ${items.length} agents` : "Compare agents"}</h1>
          {first ? <p className="prompt-quote">{first.prompt}</p> : null}
          {items.length > 0 ? (
            <p className="muted small" aria-live="polite" data-group-progress>
              {ended === items.length
                ? `All ${items.length} agents have ended.`
                : `${ended} of ${items.length} agents have ended.`}
            </p>
          ) : null}
        </div>
        <div className="head-side">
          {items.length > 0 ? (
            <Link href={`/runs/${items.map((r) => encodeURIComponent(r.id)).join(",")}`} className="button">
              Transcripts side by side
            </Link>
          ) : null}
        </div>
      </div>
      {runs.error ? (
        <ErrorNotice
          error={runs.error}
          title="Could not load the group"
          onRetry={() => void runs.refetch()}
        />
      ) : null}
      {runs.isPending ? <p className="muted">Loading…</p> : null}
      {runs.data && items.length === 0 ? (
        <section className="card">
          <h2>No such group</h2>
          <p>
            No runs of yours belong to group <span className="mono">{groupId}</span>.{" "}
            <Link href="/runs">Go to your runs</Link>.
          </p>
        </section>
      ) : null}
      {items.length > 0 ? (
        <>
          <div className="compare-options">
            <label className="check" htmlFor={pushId}>
              <input id={pushId} type="checkbox" checked={push} onChange={(e) => setPush(e.target.checked)} />
              Push the kept branch to the project's remote
            </label>
          </div>
          <div className={`run-columns run-columns-${Math.min(items.length, 4)}`}>
            {items.map((run) => (
              <AgentCompareCard key={run.id} run={run} push={push} />
            ))}
          </div>
          <section className="card" aria-labelledby="diffs-title">
            <header className="card-head">
              <h2 id="diffs-title">Diffs</h2>
              <fieldset className="segmented compare-layout" aria-label="Diff layout">
                {(["side-by-side", "line-by-line"] as const).map((option) => (
                  <button
                    key={option}
                    type="button"
                    className="segment"
                    aria-pressed={layout === option}
                    onClick={() => setLayout(option)}
                  >
                    {option === "side-by-side" ? "Side by side" : "Inline"}
                  </button>
                ))}
              </fieldset>
            </header>
            {items.map((run) => (
              <AgentDiff key={run.id} run={run} layout={layout} />
            ))}
          </section>
        </>
      ) : null}
    </>
  );
}

function AgentDiff({ run, layout }: { run: Run; layout: DiffLayout }) {
  const ended = FINAL_RUN_STATES.includes(run.state);
  const changes = useQuery(runChangesQuery(run.id, ended));
  const label = `Diff of ${agentLabel(run.agent)} (${run.id})`;
  let body: ReactNode;
  if (!ended) body = <p className="muted">Still working.</p>;
  else if (changes.error)
    body =
      errorCode(changes.error) === "not_found" ? (
        <p className="muted">No project, no diff.</p>
      ) : (
        <ErrorNotice error={changes.error} title="Could not load the diff" />
      );
  else if (!changes.data) body = <p className="muted">Loading…</p>;
  else
    body = (
      <>
        <DiffView diff={changes.data.diff} layout={layout} label={label} />
        {changes.data.diffTruncated ? <p className="muted small">The diff was cut at 1 MiB.</p> : null}
      </>
    );
  return (
    <details className="agent-diff" open data-diff={run.id}>
      <summary>
        <strong>{agentLabel(run.agent)}</strong> <span className="muted small mono">{run.id}</span>
        {changes.data ? (
          <span className="muted small">
            {" "}
            · {changes.data.files.length} file{changes.data.files.length === 1 ? "" : "s"}
          </span>
        ) : null}
      </summary>
      {body}
    </details>
  );
}
