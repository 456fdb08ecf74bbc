import { useQuery } from "@tanstack/react-query";
import type { KeyboardEvent } from "react";
import { useEffect, useId, useState } from "react";
import type { Project } from "../api/types";
import { projectListQuery, useAddProject } from "../queries/projects";
import { ErrorNotice } from "./error-notice";
import { addProjectBody } from "./project-source";

export interface ProjectChoice {
  /** The project's folder in the sandbox, or "" for none. */
  path: string;
  /** The check command typed for this run, or "" for the project's own. */
  check: string;
}

/**
 * The run form's project: one of the chosen sandbox's git repositories (the only one by default),
 * an optional check command, and a way to add a project from a git URL or a folder.
 */
export function ProjectPicker({
  sandboxId,
  onChange,
}: {
  sandboxId: string;
  onChange: (choice: ProjectChoice) => void;
}) {
  const projects = useQuery(projectListQuery(sandboxId));
  // undefined: nothing picked yet, so the only project (if there is one) is the choice.
  const [picked, setPicked] = useState<string | undefined>(undefined);
  const [check, setCheck] = useState("");
  const items = projects.data?.items ?? [];
  const path = picked ?? (items.length === 1 ? (items[0]?.path ?? "") : "");
  const selected = items.find((p) => p.path === path);
  useEffect(() => onChange({ path, check }), [path, check, onChange]);

  if (!sandboxId) {
    return (
      <p className="muted small">
        Choose a sandbox above to let the agents work in one of its projects (git repositories).
      </p>
    );
  }
  return (
    <div className="stack">
      <div className="run-options">
        <label className="field">
          <span>Project</span>
          <select className="input" value={path} onChange={(e) => setPicked(e.target.value)}>
            <option value="">
              {projects.isPending ? "Loading projects…" : "No project: the home folder"}
            </option>
            {items.map((p) => (
              <option key={p.path} value={p.path}>
                {p.name} ({p.path}
                {p.branch ? ` on ${p.branch}` : ""})
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Check command</span>
          <input
            className="input mono"
            value={check}
            onChange={(e) => setCheck(e.target.value)}
            placeholder={selected?.check ? `default: ${selected.check}` : "e.g. npm test"}
            disabled={!path}
          />
        </label>
      </div>
      {projects.error ? (
        <ErrorNotice error={projects.error} title="Could not list the sandbox's projects" />
      ) : null}
      <AddProject sandboxId={sandboxId} onAdded={(project) => setPicked(project.path)} />
    </div>
  );
}

/** A nested form is not allowed inside the run form, so Enter here adds instead of submitting. */
function AddProject({ sandboxId, onAdded }: { sandboxId: string; onAdded: (project: Project) => void }) {
  const add = useAddProject();
  const [source, setSource] = useState("");
  const [check, setCheck] = useState("");
  const sourceId = useId();
  const submit = (): void => {
    if (!source.trim()) return;
    add.mutate(
      { sandboxId, body: addProjectBody(source, check) },
      {
        onSuccess: (project) => {
          setSource("");
          setCheck("");
          onAdded(project);
        },
      },
    );
  };
  const onEnter = (event: KeyboardEvent<HTMLInputElement>): void => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    submit();
  };
  return (
    <details className="add-project">
      <summary className="small">Add a project</summary>
      <div className="run-options">
        <label className="field" htmlFor={sourceId}>
          <span>Repository URL or folder</span>
          <input
            id={sourceId}
            className="input mono"
            value={source}
            onChange={(e) => setSource(e.target.value)}
            onKeyDown={onEnter}
            placeholder="https://github.com/org/app.git or work/app"
          />
          <small>
            A URL is cloned inside the sandbox over its network; a folder is made a git repository.
          </small>
        </label>
        <label className="field">
          <span>Default check</span>
          <input
            className="input mono"
            value={check}
            onChange={(e) => setCheck(e.target.value)}
            onKeyDown={onEnter}
            placeholder="e.g. npm test (optional)"
          />
        </label>
      </div>
      <div className="actions">
        <button type="button" className="button" onClick={submit} disabled={add.isPending || !source.trim()}>
          {add.isPending ? "Adding…" : "Add project"}
        </button>
        {add.data ? (
          <span className="muted small" role="status">
            Added {add.data.name} ({add.data.path}).
          </span>
        ) : null}
      </div>
      {add.error ? <ErrorNotice error={add.error} title="Could not add the project" /> : null}
    </details>
  );
}
