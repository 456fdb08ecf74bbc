import type { ToolCallPlan } from "./shell-tools.js";
import { findShellTool, shellToolCall } from "./shell-tools.js";
import type { FakeRequestView, FakeTurn } from "./types.js";

/** A turn resolved against one request: tool chosen, usage filled in. What the adapters render. */
export interface PlannedReply {
  kind: "reply";
  text: string;
  toolCall?: ToolCallPlan;
  delayMs: number;
  inputTokens: number;
  outputTokens: number;
}

export interface PlannedError {
  kind: "error";
  status: number;
  type?: string;
  message: string;
}

export type Plan = PlannedReply | PlannedError;

/** Rough token estimate (4 characters a token), good enough for metering assertions. */
export function estimateTokens(characters: number): number {
  return Math.max(1, Math.ceil(characters / 4));
}

export function planTurn(turn: FakeTurn, view: FakeRequestView, requestBytes: number): Plan {
  if ("error" in turn) return { kind: "error", ...turn.error };
  let toolCall: PlannedReply["toolCall"];
  if ("toolCall" in turn) {
    const call = turn.toolCall;
    if ("arguments" in call) toolCall = { name: call.tool, arguments: call.arguments };
    else if ("input" in call) toolCall = { name: call.tool, arguments: {}, freeformInput: call.input };
    else {
      const name = call.tool ?? findShellTool(view);
      if (!name) {
        // A script expecting a shell call against a request without one is a test bug; say so loudly.
        return {
          kind: "error",
          status: 400,
          message: `fake-providers: the script asks for a shell command but the request offers no shell tool (offered: ${view.toolNames.join(", ") || "none"})`,
        };
      }
      toolCall = shellToolCall(name, call.command, view);
    }
  }
  const text = turn.text ?? "";
  const outputCharacters =
    text.length + (toolCall ? (toolCall.freeformInput ?? JSON.stringify(toolCall.arguments)).length : 0);
  return {
    kind: "reply",
    text,
    ...(toolCall ? { toolCall } : {}),
    delayMs: turn.delayMs ?? 0,
    inputTokens: turn.usage?.inputTokens ?? estimateTokens(requestBytes),
    outputTokens: turn.usage?.outputTokens ?? estimateTokens(outputCharacters),
  };
}
