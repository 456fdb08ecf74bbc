import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useState } from "react";
import { BarChart } from "../components/bar-chart";
import { ErrorNotice } from "../components/error-notice";
import { formatAge, formatMb, formatTime } from "../components/format";
import { JobsPanel } from "../components/jobs-panel";
import { PlansPanel } from "../components/plans-panel";
import { StateBadge } from "../components/state-badge";
import { adminSandboxesQuery, adminStatsQuery, adminUsersQuery, useCreateUser } from "../queries/admin";
import { Link } from "../router";

// Destroyed sandboxes only accumulate; counted in the caption rather than drawn as a bar.
const STATE_ORDER = ["creating", "running", "hibernated", "stopped", "destroying", "failed"];

export function AdminPage() {
  return (
    <>
      <div className="page-head">
        <h1>Admin</h1>
        <p className="muted">
          Users and their plans, every sandbox on this server, how it is being used, and its background jobs.
        </p>
      </div>
      <SystemFigures />
      <Users />
      <PlansPanel />
      <AllSandboxes />
      <JobsPanel />
    </>
  );
}

function SystemFigures() {
  const stats = useQuery(adminStatsQuery());
  if (stats.error) return <ErrorNotice error={stats.error} title="Could not load system figures" />;
  if (!stats.data) return <p className="muted">Loading figures…</p>;
  const s = stats.data;
  const states = [...new Set([...STATE_ORDER, ...Object.keys(s.sandboxesByState)])].filter(
    (state) => state !== "destroyed",
  );
  const destroyed = s.sandboxesByState.destroyed ?? 0;
  return (
    <section className="card" aria-labelledby="figures-title">
      <div className="card-head">
        <h2 id="figures-title">System</h2>
        <span className="muted">
          {s.users} {s.users === 1 ? "user" : "users"}
        </span>
      </div>
      <div className="charts">
        <BarChart
          title={`Sandboxes by state${destroyed > 0 ? ` (and ${destroyed} destroyed)` : ""}`}
          bars={states.map((state) => ({ label: state, value: s.sandboxesByState[state] ?? 0 }))}
        />
        <BarChart
          title="Runs per hour (last 24 h)"
          bars={s.runsPerHour.map((h, index) => {
            const date = new Date(h.hour);
            const label = `${String(date.getHours()).padStart(2, "0")}:00`;
            return {
              label,
              value: h.count,
              tick: index % 4 === 0 || index === s.runsPerHour.length - 1 ? label : "",
            };
          })}
          unit="runs"
        />
        <BarChart
          title="Gateway requests by provider"
          bars={s.usageByProvider.map((u) => ({ label: u.provider, value: u.requests }))}
          unit="requests"
        />
      </div>
      {s.usageByProvider.length > 0 ? (
        <div className="table-wrap">
          <table className="table table-compact" aria-label="Usage by provider">
            <thead>
              <tr>
                <th scope="col">Provider</th>
                <th scope="col" className="num">
                  Requests
                </th>
                <th scope="col" className="num">
                  Input tokens
                </th>
                <th scope="col" className="num">
                  Output tokens
                </th>
              </tr>
            </thead>
            <tbody>
              {s.usageByProvider.map((u) => (
                <tr key={u.provider}>
                  <td>{u.provider}</td>
                  <td className="num">{u.requests}</td>
                  <td className="num">{u.inputTokens.toLocaleString()}</td>
                  <td className="num">{u.outputTokens.toLocaleString()}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

function Users() {
  const users = useQuery(adminUsersQuery());
  const create = useCreateUser();
  const [name, setName] = useState("");
  const [role, setRole] = useState<"user" | "admin">("user");
  const [password, setPassword] = useState("");
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    create.mutate(
      { name: name.trim(), role, ...(password ? { password } : {}) },
      {
        onSuccess: () => {
          setName("");
          setPassword("");
        },
      },
    );
  };
  return (
    <section className="card" aria-labelledby="users-title">
      <h2 id="users-title">Users</h2>
      <form className="create-form" onSubmit={submit}>
        <label className="field">
          <span>Name</span>
          <input
            className="input"
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="alice"
            required
          />
        </label>
        <label className="field">
          <span>Role</span>
          <select
            className="input"
            value={role}
            onChange={(e) => setRole(e.target.value === "admin" ? "admin" : "user")}
          >
            <option value="user">User</option>
            <option value="admin">Admin</option>
          </select>
        </label>
        <label className="field">
          <span>Password (optional)</span>
          <input
            className="input"
            type="password"
            autoComplete="new-password"
            minLength={8}
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <div className="field field-submit">
          <button type="submit" className="button button-primary" disabled={create.isPending}>
            {create.isPending ? "Creating…" : "Create user"}
          </button>
        </div>
      </form>
      {create.error ? <ErrorNotice error={create.error} title="Could not create the user" /> : null}
      {create.data ? (
        <div className="notice notice-good" role="status">
          <strong>{create.data.user.name}</strong> was created. Their API key is shown only this once:
          <div className="secret-row">
            <code className="secret" data-testid="new-api-key">
              {create.data.apiKey}
            </code>
            <button
              type="button"
              className="button button-small"
              onClick={() => void navigator.clipboard?.writeText(create.data?.apiKey ?? "")}
            >
              Copy
            </button>
          </div>
        </div>
      ) : null}
      {users.error ? <ErrorNotice error={users.error} title="Could not load users" /> : null}
      {users.data ? (
        <div className="table-wrap">
          <table className="table" aria-label="Users">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {users.data.items.map((u) => (
                <tr key={u.id}>
                  <td>{u.name}</td>
                  <td>{u.role}</td>
                  <td className="small">{formatTime(u.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

function AllSandboxes() {
  const list = useInfiniteQuery(adminSandboxesQuery());
  const [showEnded, setShowEnded] = useState(false);
  const all = list.data?.pages.flatMap((page) => page.items) ?? [];
  const items = all.filter((s) => showEnded || s.state !== "destroyed");
  const endedCount = all.length - all.filter((s) => s.state !== "destroyed").length;
  return (
    <section className="card" aria-labelledby="all-sandboxes-title">
      <div className="card-head">
        <h2 id="all-sandboxes-title">All sandboxes</h2>
        {endedCount > 0 ? (
          <label className="check">
            <input type="checkbox" checked={showEnded} onChange={(e) => setShowEnded(e.target.checked)} />
            Show destroyed ({endedCount})
          </label>
        ) : null}
      </div>
      {list.error ? <ErrorNotice error={list.error} title="Could not load sandboxes" /> : null}
      {list.data && items.length === 0 ? (
        <p className="empty">No sandboxes on this server right now.</p>
      ) : null}
      {items.length > 0 ? (
        <div className="table-wrap">
          <table className="table" aria-label="All sandboxes">
            <thead>
              <tr>
                <th scope="col">Sandbox</th>
                <th scope="col">Owner</th>
                <th scope="col">State</th>
                <th scope="col" className="hide-narrow">
                  Age
                </th>
                <th scope="col" className="hide-narrow">
                  Limits
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr key={s.id}>
                  <td className="mono">
                    <Link href={`/admin/sandboxes/${encodeURIComponent(s.id)}`}>{s.id}</Link>
                  </td>
                  <td>{s.ownerName}</td>
                  <td>
                    <StateBadge state={s.state} />
                  </td>
                  <td className="hide-narrow">{formatAge(s.createdAt)}</td>
                  <td className="hide-narrow small">
                    {s.cpu} CPU · {formatMb(s.memoryMb)} · {s.pidsMax} pids
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
          className="button button-small"
          disabled={list.isFetchingNextPage}
          onClick={() => void list.fetchNextPage()}
        >
          {list.isFetchingNextPage ? "Loading…" : "Load older sandboxes"}
        </button>
      ) : null}
    </section>
  );
}
