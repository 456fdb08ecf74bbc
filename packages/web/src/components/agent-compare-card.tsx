import { useQuery } from "@tanstack/react-query";
import type { RunKeep } from "../api/keep";
import { conflictPaths, keptOf } from "../api/keep";
import type { Run, RunChanges } from "../api/types";
import { FINAL_RUN_STATES } from "../api/types";
import { errorCode } from "../queries/errors";
import { useKeepRun } from "../queries/groups";
import { runChangesQuery } from "../queries/runs";
import { Link } from "../router";
import { agentLabel } from "./agent-labels";
import { ErrorNotice } from "./error-notice";
import { formatCost, runTime } from "./run-figures";
import { StateBadge } from "./state-badge";

/**
 * One agent of a group, as the compare page lines them up: state, time, tokens, cost, the check,
 * the files it changed, and "Keep this one".
 */
export function AgentCompareCard({ run, push }: { run: Run; push: boolean }) {
  const ended = FINAL_RUN_STATES.includes(run.state);
  const changes = useQuery(runChangesQuery(run.id, ended));
  const time = runTime(run);
  return (
    <section
      className="card compare-card"
      aria-label={`${agentLabel(run.agent)} (${run.id})`}
      data-run={run.id}
    >
      <header className="card-head">
        <h2>
          {agentLabel(run.agent)} <StateBadge state={run.state} />
        </h2>
        <Link href={`/runs/${encodeURIComponent(run.id)}`} className="small">
          Transcript
        </Link>
      </header>
      <dl className="compare-figures">
        <div>
          <dt>Time</dt>
          <dd data-figure="time">{time.label}</dd>
        </div>
        <div>
          <dt>Tokens</dt>
          <dd data-figure="tokens">
            {run.usage.inputTokens} in / {run.usage.outputTokens} out
          </dd>
        </div>
        <div>
          <dt>Cost</dt>
          <dd data-figure="cost">
            {changes.data ? (
              changes.data.costUsd === null ? (
                <span
                  className="muted"
                  title="The server's price table (POLYDEV_MODEL_PRICES) has no price for this model"
                >
                  no price
                </span>
              ) : (
                formatCost(changes.data.costUsd)
              )
            ) : (
              "–"
            )}
          </dd>
        </div>
      </dl>
      {run.state === "failed" || run.state === "timed_out" ? (
        <p className="muted small">{run.exitReason ?? "The agent ended with an error."}</p>
      ) : null}
      <ChangesSummary run={run} ended={ended} changes={changes.data} error={changes.error} />
      {ended && changes.data ? <KeepControl run={run} changes={changes.data} push={push} /> : null}
    </section>
  );
}

function ChangesSummary({
  run,
  ended,
  changes,
  error,
}: {
  run: Run;
  ended: boolean;
  changes: RunChanges | undefined;
  error: unknown;
}) {
  if (!ended)
    return <p className="muted small">The changes and the check are recorded when the agent ends.</p>;
  if (error) {
    if (errorCode(error) === "not_found")
      return <p className="muted small">This run named no project, so no changes were recorded.</p>;
    return <ErrorNotice error={error} title="Could not load the changes" />;
  }
  if (!changes) return <p className="muted small">Loading the changes…</p>;
  return (
    <>
      {changes.error ? (
        <div className="notice notice-error" role="alert">
          {changes.error}
        </div>
      ) : null}
      {changes.check ? (
        <div
          className={`notice ${changes.check.exitCode === 0 ? "notice-good" : "notice-error"}`}
          data-check={run.id}
        >
          Check <code>{changes.check.command}</code>{" "}
          {changes.check.exitCode === 0 ? "passed" : `failed (exit ${changes.check.exitCode ?? "?"})`}
          {changes.check.output ? (
            <details className="check-output" open={changes.check.exitCode !== 0}>
              <summary className="small">Output</summary>
              <pre className="mono small">{changes.check.output}</pre>
              {changes.check.outputTruncated ? <p className="muted small">The output was cut.</p> : null}
            </details>
          ) : null}
        </div>
      ) : (
        <p className="muted small" data-check={run.id}>
          No check ran.
        </p>
      )}
      <ul className="changed-files" aria-label={`Files ${agentLabel(run.agent)} changed`}>
        {changes.files.map((file) => (
          <li key={file.path}>
            <span className="mono">{file.status}</span> {file.path}
          </li>
        ))}
        {changes.files.length === 0 ? <li className="muted">No files changed.</li> : null}
      </ul>
      {changes.filesTruncated ? <p className="muted small">More files changed than were kept.</p> : null}
    </>
  );
}

function KeepControl({ run, changes, push }: { run: Run; changes: RunChanges; push: boolean }) {
  const keep = useKeepRun();
  // A keep that conflicted is recorded too (its branch stays), so this attempt's error comes first.
  const kept: RunKeep | null = keep.data ?? (keep.error ? null : keptOf(changes));
  if (kept) return <KeepResult kept={kept} />;
  const conflicts = conflictPaths(keep.error);
  const nothing = changes.files.length === 0 || changes.baseCommit === null;
  return (
    <div className="keep-control">
      <button
        type="button"
        className="button button-primary"
        disabled={keep.isPending || nothing}
        title={nothing ? "This agent changed nothing to keep" : undefined}
        onClick={() => keep.mutate({ id: run.id, body: push ? { push: true } : {} })}
      >
        {keep.isPending ? "Keeping…" : "Keep this one"}
      </button>
      {conflicts ? (
        <div className="notice notice-error" role="alert" data-conflict={run.id}>
          <strong>This change conflicts with the project's current branch</strong> in:
          <ul className="conflict-paths" aria-label="Conflicting files">
            {conflicts.map((path) => (
              <li key={path} className="mono">
                {path}
              </li>
            ))}
          </ul>
          <p className="notice-hint">{keep.error instanceof Error ? keep.error.message : null}</p>
        </div>
      ) : keep.error ? (
        <ErrorNotice error={keep.error} title="Could not keep this change" />
      ) : null}
    </div>
  );
}

/** The forge's pull-request URL is linked only when it is http(s): never a javascript: link. */
function KeepResult({ kept }: { kept: RunKeep }) {
  return (
    <div className="notice notice-good keep-result" role="status" data-kept>
      <strong>Kept</strong> on branch <code>{kept.branch}</code> (commit{" "}
      <span className="mono">{kept.commit.slice(0, 12)}</span>)
      {kept.merged ? ", merged into the project's branch" : ", not merged into the project's branch"}
      {kept.pushed ? ", pushed" : ""}.
      {kept.pullRequestUrl && /^https?:\/\//.test(kept.pullRequestUrl) ? (
        <>
          {" "}
          <a href={kept.pullRequestUrl} target="_blank" rel="noreferrer noopener">
            Open the pull request
          </a>
        </>
      ) : null}
      {kept.otherKeptRuns && kept.otherKeptRuns.length > 0 ? (
        <p className="notice-hint">
          Another agent of this group was kept before: {kept.otherKeptRuns.join(", ")}.
        </p>
      ) : null}
    </div>
  );
}
