/** Admin card: each background job's last run, so a failing one (and its reason) is seen. */
import { useQuery } from "@tanstack/react-query";
import type { JobRun } from "../api/types";
import { adminJobsQuery } from "../queries/admin";
import { ErrorNotice } from "./error-notice";
import { formatAge, formatTime } from "./format";

const OUTCOME_BADGE: Record<JobRun["outcome"], string> = {
  succeeded: "badge badge-good",
  failed: "badge badge-bad",
  running: "badge badge-busy",
};

function took(run: JobRun): string {
  if (run.endedAt === null) return "—";
  const ms = Date.parse(run.endedAt) - Date.parse(run.startedAt);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function JobsPanel() {
  const jobs = useQuery(adminJobsQuery());
  if (jobs.error) return <ErrorNotice error={jobs.error} title="Could not load background jobs" />;
  const runs = jobs.data?.items;
  return (
    <section className="card" aria-labelledby="jobs-title">
      <div className="card-head">
        <h2 id="jobs-title">Background jobs</h2>
        <span className="muted">cluster-wide jobs run once across servers; per-node jobs on each</span>
      </div>
      {!runs ? (
        <p className="muted">Loading jobs…</p>
      ) : runs.length === 0 ? (
        <p className="muted">No job has run yet.</p>
      ) : (
        <div className="table-wrap">
          <table className="table table-compact" aria-label="Background jobs">
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col">Scope</th>
                <th scope="col">Ran on</th>
                <th scope="col">Outcome</th>
                <th scope="col">Last run</th>
                <th scope="col" className="num">
                  Took
                </th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((run) => (
                <tr key={`${run.job}/${run.scope}/${run.scope === "node" ? run.node : ""}`}>
                  <td>{run.job}</td>
                  <td>{run.scope === "cluster" ? "cluster" : "per node"}</td>
                  <td>{run.node}</td>
                  <td>
                    <span className={OUTCOME_BADGE[run.outcome]}>{run.outcome}</span>
                  </td>
                  <td title={formatTime(run.startedAt)}>{formatAge(run.startedAt)}</td>
                  <td className="num">{took(run)}</td>
                  <td>{run.error ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
