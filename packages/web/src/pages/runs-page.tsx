import { useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useState } from "react";
import type { Agent, Run } from "../api/types";
import { AGENTS } from "../api/types";
import { AGENT_LABELS } from "../components/agent-labels";
import { ErrorNotice } from "../components/error-notice";
import { formatAge } from "../components/format";
import { ProjectPicker } from "../components/project-picker";
import { StateBadge } from "../components/state-badge";
import { runListQuery, useStartRun } from "../queries/runs";
import { sandboxListQuery } from "../queries/sandboxes";
import { Link, navigate } from "../router";

export function RunsPage() {
  return (
    <>
      <div className="page-head">
        <h1>Runs</h1>
        <p className="muted">
          Give agents a prompt; pick several to compare them side by side on the same task.
        </p>
      </div>
      <StartRunForm />
      <RunHistory />
    </>
  );
}

function StartRunForm() {
  const start = useStartRun();
  const sandboxes = useQuery(sandboxListQuery());
  const [prompt, setPrompt] = useState("");
  const [agents, setAgents] = useState<Agent[]>(["builtin"]);
  const [sandboxId, setSandboxId] = useState("");
  const [project, setProject] = useState<{ path: string; check: string }>({ path: "", check: "" });
  // A run starts a stopped sandbox (and resumes a hibernated one) before it begins.
  const running = (sandboxes.data?.items ?? []).filter(
    (s) => s.state === "running" || s.state === "stopped" || s.state === "hibernated",
  );

  const toggle = (agent: Agent, on: boolean): void =>
    setAgents((current) =>
      on ? AGENTS.filter((a) => a === agent || current.includes(a)) : current.filter((a) => a !== agent),
    );

  const submit = (event: FormEvent): void => {
    event.preventDefault();
    start.mutate(
      {
        agents,
        prompt,
        ...(sandboxId ? { sandboxId } : {}),
        ...(sandboxId && project.path ? { project: project.path, check: project.check.trim() } : {}),
      },
      { onSuccess: (runs) => navigate(`/runs/${runs.map((r) => r.id).join(",")}`) },
    );
  };

  return (
    <section className="card" aria-labelledby="start-run-title">
      <h2 id="start-run-title">New run</h2>
      <form className="stack" onSubmit={submit}>
        <label className="field">
          <span>Prompt</span>
          <textarea
            className="input"
            rows={4}
            value={prompt}
            onChange={(e) => setPrompt(e.target.value)}
            placeholder="Add a README that explains how to run the tests"
            required
          />
        </label>
        <div className="run-options">
          <fieldset className="fieldset">
            <legend>Agents</legend>
            <div className="checks">
              {AGENTS.map((agent) => (
                <label key={agent} className="check">
                  <input
                    type="checkbox"
                    name="agent"
                    value={agent}
                    checked={agents.includes(agent)}
                    onChange={(e) => toggle(agent, e.target.checked)}
                  />
                  {AGENT_LABELS[agent]}
                </label>
              ))}
            </div>
          </fieldset>
          <label className="field">
            <span>Sandbox</span>
            <select className="input" value={sandboxId} onChange={(e) => setSandboxId(e.target.value)}>
              <option value="">Your default sandbox (created if needed)</option>
              {running.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.name ? `${s.name} (${s.id})` : s.id}
                  {s.state === "running" ? "" : ` · ${s.state}`}
                </option>
              ))}
            </select>
          </label>
        </div>
        <ProjectPicker key={sandboxId} sandboxId={sandboxId} onChange={setProject} />
        <div className="actions">
          <button
            type="submit"
            className="button button-primary"
            disabled={start.isPending || agents.length === 0 || prompt.trim() === ""}
          >
            {start.isPending ? "Starting…" : agents.length > 1 ? `Start ${agents.length} runs` : "Start run"}
          </button>
          {agents.length === 0 ? <span className="muted small">Choose at least one agent.</span> : null}
        </div>
        {start.error ? <ErrorNotice error={start.error} title="Could not start the run" /> : null}
      </form>
    </section>
  );
}

/** Runs of one group share a row, so a side-by-side comparison reopens as one view. */
function groupRuns(runs: Run[]): Run[][] {
  const groups: Run[][] = [];
  const byGroup = new Map<string, Run[]>();
  for (const run of runs) {
    if (!run.groupId) {
      groups.push([run]);
      continue;
    }
    const existing = byGroup.get(run.groupId);
    if (existing) existing.push(run);
    else {
      const group = [run];
      byGroup.set(run.groupId, group);
      groups.push(group);
    }
  }
  return groups;
}

function RunHistory() {
  const list = useQuery(runListQuery());
  const groups = groupRuns(list.data?.items ?? []);
  return (
    <section className="card" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      {list.error ? (
        <ErrorNotice error={list.error} title="Could not load runs" onRetry={() => void list.refetch()} />
      ) : null}
      {list.isPending ? <p className="muted">Loading…</p> : null}
      {list.data && groups.length === 0 ? <p className="empty">No runs yet.</p> : null}
      {groups.length > 0 ? (
        <ul className="history">
          {groups.map((group) => {
            const [first] = group;
            if (!first) return null;
            return (
              <li key={first.id} className="history-item">
                <Link href={`/runs/${group.map((r) => r.id).join(",")}`} className="history-link">
                  <span className="history-prompt">{first.prompt}</span>
                  <span className="history-meta">
                    {group.map((run) => (
                      <span key={run.id} className="history-agent">
                        {run.agent} <StateBadge state={run.state} />
                      </span>
                    ))}
                    <span className="muted small">{formatAge(first.createdAt)} ago</span>
                  </span>
                </Link>
              </li>
            );
          })}
        </ul>
      ) : null}
    </section>
  );
}
