import "diff2html/bundles/css/diff2html.min.css";
import { useQuery } from "@tanstack/react-query";
import { html as diffHtml } from "diff2html";
import { useMemo } from "react";
import { errorCode } from "../queries/errors";
import { runChangesQuery } from "../queries/runs";
import { ErrorNotice } from "./error-notice";

/**
 * A run's changes: the files, the check and the diff, drawn by diff2html. The diff came out of a
 * sandbox; diff2html escapes every line and file name it renders (the browser test writes a file
 * named like markup to prove it).
 */
export function RunChanges({ id, ended }: { id: string; ended: boolean }) {
  const changes = useQuery(runChangesQuery(id, ended));
  const rendered = useMemo(
    () =>
      changes.data?.diff
        ? diffHtml(changes.data.diff, { drawFileList: false, outputFormat: "line-by-line", matching: "none" })
        : "",
    [changes.data?.diff],
  );
  if (!ended) return <p className="muted">The changes are recorded when the run ends.</p>;
  if (changes.isPending) return <p className="muted">Loading the changes…</p>;
  if (changes.error) {
    if (errorCode(changes.error) === "not_found")
      return <p className="muted">This run named no project, so no changes were recorded.</p>;
    return <ErrorNotice error={changes.error} title="Could not load the changes" />;
  }
  const data = changes.data;
  return (
    <div className="run-changes">
      <p className="muted small">
        {data.project} since <span className="mono">{data.baseCommit?.slice(0, 12) ?? "?"}</span>
        {data.durationMs === null ? null : ` · ${(data.durationMs / 1000).toFixed(1)} s`}
        {` · ${data.usage.inputTokens} in / ${data.usage.outputTokens} out tokens`}
        {data.costUsd === null ? null : ` · $${data.costUsd.toFixed(4)}`}
      </p>
      {data.error ? (
        <div className="notice notice-error" role="alert">
          {data.error}
        </div>
      ) : null}
      {data.check ? (
        <div className={`notice ${data.check.exitCode === 0 ? "notice-good" : "notice-error"}`} data-check>
          Check <code>{data.check.command}</code>{" "}
          {data.check.exitCode === 0 ? "passed" : `failed (exit ${data.check.exitCode ?? "?"})`}
          {data.check.exitCode !== 0 && data.check.output ? (
            <pre className="mono small">{data.check.output}</pre>
          ) : null}
        </div>
      ) : null}
      <ul className="changed-files" aria-label="Changed files">
        {data.files.map((file) => (
          <li key={file.path}>
            <span className="mono">{file.status}</span> {file.path}
          </li>
        ))}
        {data.files.length === 0 ? <li className="muted">No files changed.</li> : null}
      </ul>
      {data.filesTruncated ? <p className="muted small">More files changed than were kept.</p> : null}
      {data.diffTruncated ? <p className="muted small">The diff was cut at 1 MiB.</p> : null}
      {/* biome-ignore lint/security/noDangerouslySetInnerHtml: diff2html escapes the diff's text */}
      <div className="diff-view" dangerouslySetInnerHTML={{ __html: rendered }} />
    </div>
  );
}
