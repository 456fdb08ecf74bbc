import { useQuery } from "@tanstack/react-query";
import { ConfirmButton } from "../components/confirm-button";
import { ErrorNotice } from "../components/error-notice";
import { formatAge, formatMb, networkLabel } from "../components/format";
import { LifecycleLogTable } from "../components/logs-view";
import { StateBadge } from "../components/state-badge";
import { adminSandboxLogsQuery, adminSandboxQuery, useAdminDestroySandbox } from "../queries/admin";
import { errorCode } from "../queries/errors";
import { Link } from "../router";

/**
 * An admin's view of any user's sandbox: what it is, whose, what happened to it, and a way to
 * destroy it. Its shell and files stay its owner's.
 */
export function AdminSandboxPage({ id }: { id: string }) {
  const sandbox = useQuery(adminSandboxQuery(id));
  const logs = useQuery(adminSandboxLogsQuery(id));
  const destroy = useAdminDestroySandbox();

  if (sandbox.error) {
    return (
      <section className="card">
        <h1>Sandbox {id}</h1>
        <ErrorNotice
          error={sandbox.error}
          title={errorCode(sandbox.error) === "not_found" ? "No such sandbox" : "Could not load the sandbox"}
        />
        <Link href="/admin">Back to Admin</Link>
      </section>
    );
  }
  if (!sandbox.data) return <p className="muted">Loading…</p>;
  const box = sandbox.data;
  const ended = box.state === "destroyed" || box.state === "destroying";
  return (
    <>
      <div className="page-head page-head-row">
        <div>
          <p className="crumb-line">
            <Link href="/admin">Admin</Link> /
          </p>
          <h1 className="mono">{box.name ?? box.id}</h1>
          {box.name ? <p className="muted small mono">{box.id}</p> : null}
          <p>
            Owned by <strong data-testid="owner">{box.ownerName}</strong> · <StateBadge state={box.state} />
          </p>
          <p className="muted small">
            {box.cpu} CPU · {formatMb(box.memoryMb)} memory · {formatMb(box.diskMb)} disk · {box.pidsMax}{" "}
            processes · {networkLabel(box.network)} · {box.driver} driver · created {formatAge(box.createdAt)}{" "}
            ago
          </p>
        </div>
        <div className="actions">
          <ConfirmButton
            label={destroy.isPending ? "Destroying…" : "Destroy"}
            title={`Destroy ${box.ownerName}'s sandbox?`}
            confirmLabel="Destroy it"
            disabled={ended || destroy.isPending}
            onConfirm={() => destroy.mutate(box.id)}
          >
            <p>
              Its processes end and its files are deleted. {box.ownerName} sees in its log that an admin
              destroyed it.
            </p>
          </ConfirmButton>
        </div>
      </div>
      {destroy.error ? <ErrorNotice error={destroy.error} title="Could not destroy the sandbox" /> : null}
      <section className="card" aria-labelledby="admin-sandbox-log-title">
        <h2 id="admin-sandbox-log-title">Lifecycle log</h2>
        {logs.error ? <ErrorNotice error={logs.error} title="Could not load the log" /> : null}
        {logs.data ? <LifecycleLogTable items={logs.data.items} /> : <p className="muted">Loading…</p>}
      </section>
      <p className="muted small">
        Its terminal and files are its owner's: an admin opens what it is and what happened to it, and can
        destroy it.
      </p>
    </>
  );
}
