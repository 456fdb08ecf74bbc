import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
import { ErrorNotice } from "../components/error-notice";
import { formatTime } from "../components/format";
import { auditQuery } from "../queries/keys";

const ACTIONS = [
  "sign_in",
  "sign_out",
  "api_key.create",
  "api_key.revoke",
  "password.change",
  "credential.add",
  "credential.remove",
  "user.create",
  "user.role_change",
  "oidc.provision",
  "admin.sandbox_action",
] as const;

export function AdminAuditPage() {
  const [action, setAction] = useState("");
  const [outcome, setOutcome] = useState<"" | "success" | "failure">("");
  const filter = {
    ...(action ? { action: action as (typeof ACTIONS)[number] } : {}),
    ...(outcome ? { outcome } : {}),
  } as const;
  const list = useInfiniteQuery(auditQuery(filter));
  const items = list.data?.pages.flatMap((page) => page.items) ?? [];
  return (
    <>
      <div className="page-head">
        <h1>Audit log</h1>
        <p className="muted">
          Sign-ins, API keys, passwords, credentials, users and roles, newest first. Secrets are never
          recorded.
        </p>
      </div>
      <section className="card" aria-labelledby="audit-title">
        <div className="card-head">
          <h2 id="audit-title">Events</h2>
          <div className="create-form">
            <label className="field">
              <span>Action</span>
              <select className="input" value={action} onChange={(e) => setAction(e.target.value)}>
                <option value="">All</option>
                {ACTIONS.map((a) => (
                  <option key={a} value={a}>
                    {a}
                  </option>
                ))}
              </select>
            </label>
            <label className="field">
              <span>Outcome</span>
              <select
                className="input"
                value={outcome}
                onChange={(e) =>
                  setOutcome(
                    e.target.value === "success" || e.target.value === "failure" ? e.target.value : "",
                  )
                }
              >
                <option value="">All</option>
                <option value="success">Success</option>
                <option value="failure">Failure</option>
              </select>
            </label>
          </div>
        </div>
        {list.error ? (
          <ErrorNotice
            error={list.error}
            title="Could not load the audit log"
            onRetry={() => void list.refetch()}
          />
        ) : null}
        {list.data && items.length === 0 ? <p className="empty">No events match.</p> : null}
        {items.length > 0 ? (
          <div className="table-wrap">
            <table className="table table-compact" aria-label="Audit events">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Action</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Who</th>
                  <th scope="col">Target</th>
                  <th scope="col">From</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody>
                {items.map((e) => (
                  <tr key={e.id}>
                    <td className="small">{formatTime(e.at)}</td>
                    <td>{e.action}</td>
                    <td>
                      <span className={e.outcome === "success" ? "badge badge-good" : "badge badge-bad"}>
                        {e.outcome}
                      </span>
                    </td>
                    <td>{e.actorName ?? e.actorId ?? "—"}</td>
                    <td className="small">{e.targetId ? `${e.targetType} ${e.targetId}` : "—"}</td>
                    <td className="small">{e.ip ?? "—"}</td>
                    <td className="small">
                      {Object.entries(e.details)
                        .map(([k, v]) => `${k}=${String(v)}`)
                        .join(", ")}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        {list.hasNextPage ? (
          <button
            type="button"
            className="button"
            onClick={() => void list.fetchNextPage()}
            disabled={list.isFetchingNextPage}
          >
            {list.isFetchingNextPage ? "Loading…" : "Older events"}
          </button>
        ) : null}
      </section>
    </>
  );
}
