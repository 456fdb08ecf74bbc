/**
 * Runs: an agent working on a prompt in a sandbox. Every agent's output becomes the same event
 * vocabulary, stored with a sequence number so a client can resume a stream exactly.
 */
export const RUN_AGENTS = ["claude", "codex", "gemini", "builtin"] as const;
export type RunAgent = (typeof RUN_AGENTS)[number];

export const RUN_STATES = ["queued", "running", "succeeded", "failed", "cancelled", "timed_out"] as const;
export type RunState = (typeof RUN_STATES)[number];
export const FINAL_RUN_STATES: readonly RunState[] = ["succeeded", "failed", "cancelled", "timed_out"];

export type RunEventBody =
  | { type: "status"; state: RunState; message?: string }
  | { type: "text"; delta: string }
  | { type: "tool_call"; id: string; name: string; input: unknown }
  | { type: "tool_result"; id: string; output: string; isError: boolean }
  | { type: "usage"; inputTokens: number; outputTokens: number; model?: string }
  | { type: "error"; message: string }
  | { type: "done"; finalText: string; exitReason: string }
  /** A follow-up the user sent: it opens the run's next turn (the first turn's prompt is the run's). */
  | { type: "user"; prompt: string; turn: number };

export interface RunEvent {
  runId: string;
  seq: number;
  at: number;
  body: RunEventBody;
  /** The line the CLI printed, kept for debugging. */
  raw?: string;
}

/** Turns one agent's output lines into normalized events. */
export interface OutputParser {
  /** Events for one line of the agent's stdout (none for lines it does not care about). */
  line(text: string): RunEventBody[];
  /** What the agent ended with. */
  finalText(): string;
  /** The CLI's own session id, as its output names it: a follow-up resumes that session. */
  sessionId?(): string | undefined;
}
