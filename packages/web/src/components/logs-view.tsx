import { useQuery } from "@tanstack/react-query";
import { sandboxLogsQuery } from "../queries/sandboxes";
import { ErrorNotice } from "./error-notice";
import { formatTime } from "./format";

/** Lifecycle entries and the console; a failed sandbox keeps them, so this is where "why" is. */
export function LogsView({ sandboxId }: { sandboxId: string }) {
  const logs = useQuery(sandboxLogsQuery(sandboxId));
  if (logs.error) return <ErrorNotice error={logs.error} title="Could not load the logs" />;
  if (!logs.data) return <p className="muted">Loading…</p>;
  return (
    <div className="stack">
      <LifecycleLogTable items={logs.data.items} />
      <h3>Console</h3>
      {logs.data.console ? (
        <pre className="console">{logs.data.console}</pre>
      ) : (
        <p className="muted">No console output (the sandbox is not running, or has printed nothing).</p>
      )}
    </div>
  );
}

export interface LogEntry {
  id: number;
  at: string;
  level: string;
  source: string;
  message: string;
}

/** What happened to a sandbox, oldest first: created, hibernated, resumed, failed and why. */
export function LifecycleLogTable({ items }: { items: readonly LogEntry[] }) {
  return (
    <div className="table-wrap">
      <table className="table table-compact" aria-label="Lifecycle log">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Level</th>
            <th scope="col" className="hide-narrow">
              Source
            </th>
            <th scope="col">Message</th>
          </tr>
        </thead>
        <tbody>
          {items.length === 0 ? (
            <tr>
              <td colSpan={4} className="muted">
                No entries yet.
              </td>
            </tr>
          ) : null}
          {items.map((entry) => (
            <tr key={entry.id}>
              <td className="nowrap small">{formatTime(entry.at)}</td>
              <td>
                <span className={`level level-${entry.level}`}>{entry.level}</span>
              </td>
              <td className="hide-narrow small muted">{entry.source}</td>
              <td className="wrap">{entry.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
