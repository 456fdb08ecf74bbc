/**
 * What the browser notification says when a run, or the last agent of a group, ends. Kept apart
 * from the event stream so the wording and the "is the group done yet" rule are tested alone.
 */
import { FINAL_RUN_STATES } from "../api/types";
import { agentLabel } from "./agent-labels";

export interface FinishedNotification {
  title: string;
  body: string;
  /** Same tag, same notification: a second tab or a repeated event replaces instead of stacking. */
  tag: string;
  /** The dashboard page a click opens. */
  href: string;
}

/** What of a run the notice needs; a `Run` is one. */
interface RunFacts {
  id: string;
  agent: string;
  prompt: string;
  state: string;
  groupId: string | null;
}

const PROMPT_CHARS = 120;

const OUTCOME: Record<string, string> = {
  succeeded: "finished",
  failed: "failed",
  timed_out: "timed out",
  cancelled: "was cancelled",
};

function shortPrompt(prompt: string): string {
  const line = prompt.replace(/\s+/g, " ").trim();
  return line.length > PROMPT_CHARS ? `${line.slice(0, PROMPT_CHARS - 1)}…` : line;
}

/**
 * The notice for a run that has ended, or undefined when there is nothing to say yet: a group's
 * agents are announced once, together, when the last one ends (`group` is the group's runs as
 * they are now); a lone run the user cancelled needs no notice.
 */
export function describeFinished(
  run: RunFacts,
  group?: readonly RunFacts[],
): FinishedNotification | undefined {
  if (!FINAL_RUN_STATES.includes(run.state)) return undefined;
  if (run.groupId === null) {
    if (run.state === "cancelled") return undefined;
    return {
      title: `${agentLabel(run.agent)} ${OUTCOME[run.state] ?? run.state}`,
      body: shortPrompt(run.prompt),
      tag: `polydev-run-${run.id}`,
      href: `/runs/${encodeURIComponent(run.id)}`,
    };
  }
  const members = group ?? [];
  if (members.length === 0 || members.some((r) => !FINAL_RUN_STATES.includes(r.state))) return undefined;
  const failed = members.filter((r) => r.state === "failed" || r.state === "timed_out").length;
  const title =
    failed === 0
      ? `All ${members.length} agents finished`
      : `${members.length} agents ended, ${failed} failed`;
  const outcomes = members.map((r) => `${agentLabel(r.agent)} ${OUTCOME[r.state] ?? r.state}`).join(", ");
  return {
    title,
    body: `${shortPrompt(run.prompt)}\n${outcomes}`,
    tag: `polydev-group-${run.groupId}`,
    href: `/groups/${encodeURIComponent(run.groupId)}`,
  };
}
