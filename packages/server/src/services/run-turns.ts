/**
 * Follow-ups: a finished run takes another turn. The model is "one run, many turns": the run goes
 * back to running, its events go on with the same sequence (a `user` event opens each follow-up),
 * each turn ends with its own `status` and `done`, and the run's record (state, final text, exit
 * reason, end time) describes its latest turn while its usage sums every turn. The session goes on
 * in the same sandbox and working directory: each CLI resumes its own session by the id its output
 * named, the built-in agent gets its stored message history back.
 */
import type { RunConversationRecord, RunRecord, RunState } from "@polydev/core";
import { FINAL_RUN_STATES, PolydevError } from "@polydev/core";

/** One turn of a run: the first is the run's own prompt, each follow-up adds one. */
export interface Turn {
  /** 1 for the run's prompt, 2 for its first follow-up, … */
  number: number;
  prompt: string;
  /** The last sequence number stored before this turn: its events follow it. */
  afterSeq: number;
  /** Event bytes the earlier turns stored: the bound on a run's events covers all its turns. */
  eventBytes: number;
  /** The CLI's session to resume (follow-ups of claude, codex, gemini). */
  sessionId: string | undefined;
  /** The built-in agent's messages so far (follow-ups of builtin). */
  history: unknown[] | undefined;
  /** What the earlier turns used: the run's usage is the sum over its turns. */
  tokens: { input: number; output: number };
}

export function firstTurn(run: RunRecord): Turn {
  return {
    number: 1,
    prompt: run.prompt,
    afterSeq: 0,
    eventBytes: 0,
    sessionId: undefined,
    history: undefined,
    tokens: { input: 0, output: 0 },
  };
}

/**
 * The built-in agent's history is stored as JSON up to this size; past it, the run takes no
 * further follow-up (`conversation_too_long`) rather than a model call with a cut history.
 */
export const MAX_HISTORY_BYTES = 4 * 1024 * 1024;

/** One argument of a process, its NUL included, must stay under 128 KiB: the CLIs take the prompt as one. */
const CLI_PROMPT_BYTES = 128 * 1024;

/**
 * A session id as a CLI printed it, kept only when it looks like one: it comes out of the sandbox
 * (any process there can print the line), is stored, and goes back into the CLI's argv, so it is
 * bounded and can never read as a flag. Anything else leaves the run without a session to resume.
 */
export function acceptSessionId(printed: string | undefined): string | undefined {
  return printed !== undefined && /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/.test(printed) ? printed : undefined;
}

/** The history as stored: null when it passed its bound. */
export function encodeHistory(history: unknown[] | undefined): string | null {
  if (history === undefined) return null;
  const json = JSON.stringify(history);
  return Buffer.byteLength(json) > MAX_HISTORY_BYTES ? null : json;
}

/**
 * The next turn of a finished run, or why it cannot take one: a run still working answers
 * `run_in_progress`, a run whose sandbox is gone `sandbox_gone`, a run at its bounds
 * `conversation_too_long`.
 */
export function nextTurn(input: {
  run: RunRecord;
  /** The state of the run's sandbox; undefined when its row is gone. */
  sandboxState: string | undefined;
  conversation: RunConversationRecord | undefined;
  lastSeq: number;
  prompt: string;
  maxEventBytes: number;
}): Turn {
  const { run, sandboxState, conversation } = input;
  if (!FINAL_RUN_STATES.includes(run.state as RunState))
    throw new PolydevError(
      "run_in_progress",
      `run ${run.id} is ${run.state}; send the follow-up when its turn has ended (or cancel it first)`,
      { details: { runId: run.id, state: run.state } },
    );
  if (sandboxState === undefined || ["destroying", "destroyed", "failed"].includes(sandboxState))
    throw new PolydevError(
      "sandbox_gone",
      `run ${run.id}'s sandbox ${run.sandboxId} is ${sandboxState ?? "gone"}, and with it the agent's session and files; start a new run`,
      { details: { runId: run.id, sandboxId: run.sandboxId } },
    );
  // A run that never reached its agent (cancelled while queued, interrupted by a restart before
  // its first turn ended) has no session to continue.
  if (!conversation)
    throw new PolydevError(
      "conflict",
      `run ${run.id} ended before its agent's session was recorded (${run.exitReason ?? run.state}); start a new run`,
    );
  if (conversation.eventBytes >= input.maxEventBytes)
    throw new PolydevError(
      "conversation_too_long",
      `run ${run.id} has stored ${input.maxEventBytes} bytes of events, its limit; start a new run`,
    );
  const builtin = run.agent === "builtin";
  if (!builtin && Buffer.byteLength(input.prompt) >= CLI_PROMPT_BYTES)
    throw new PolydevError(
      "invalid_request",
      `prompt is larger than the 128 KiB the ${run.agent} CLI takes; only the built-in agent takes longer prompts`,
    );
  if (builtin && conversation.history === null)
    throw new PolydevError(
      "conversation_too_long",
      `run ${run.id}'s conversation passed the ${MAX_HISTORY_BYTES} bytes the built-in agent keeps; start a new run`,
    );
  if (!builtin && conversation.sessionId === null)
    throw new PolydevError(
      "conflict",
      `the ${run.agent} CLI named no session in run ${run.id}'s output, so there is none to resume; start a new run`,
    );
  return {
    number: conversation.turns + 1,
    prompt: input.prompt,
    afterSeq: input.lastSeq,
    eventBytes: conversation.eventBytes,
    sessionId: conversation.sessionId ?? undefined,
    history: builtin ? parseHistory(conversation.history) : undefined,
    tokens: { input: run.inputTokens, output: run.outputTokens },
  };
}

function parseHistory(json: string | null): unknown[] {
  const value: unknown = json === null ? [] : JSON.parse(json);
  return Array.isArray(value) ? value : [];
}
