import type { RunEventBody } from "@polydev/core";
import type { SandboxTools } from "./tools.js";

export interface ModelLoopOptions {
  model: string;
  prompt: string;
  maxTurns: number;
  baseUrl: string;
  /** The owner's key or OAuth access token: the built-in agent runs in the server, never in the sandbox. */
  secret: string;
  oauth: boolean;
  tools: SandboxTools;
  emit(body: RunEventBody): Promise<void>;
  signal: AbortSignal;
  /**
   * The messages of the run's earlier turns, as this same loop returned them in `history`: a
   * follow-up's prompt is added after them, so the model sees the whole conversation.
   */
  history?: readonly unknown[] | undefined;
}

export interface LoopResult {
  finalText: string;
  inputTokens: number;
  outputTokens: number;
  /** "completed", or why the loop stopped early. */
  exitReason: string;
  /** Every message of the conversation so far, in the provider's own shape, for a next turn. */
  history: unknown[];
}

export const SYSTEM_PROMPT =
  "You are a coding agent working in a Linux sandbox. Use the tools to read, write and run things in the working directory. Be brief.";

export function parseArguments(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text || "{}");
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
