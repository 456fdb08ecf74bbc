import type { RunEvent } from "../api/types";
import { FINAL_RUN_STATES } from "../api/types";

export type Block =
  | { kind: "text"; key: number; text: string }
  | {
      kind: "tool";
      key: number;
      id: string;
      name: string;
      input: unknown;
      result?: { output: string; isError: boolean };
    }
  | { kind: "status"; key: number; text: string }
  | { kind: "error"; key: number; text: string }
  | { kind: "done"; key: number; exitReason: string }
  | { kind: "user"; key: number; prompt: string; turn: number };

/** Streams of deltas become readable blocks: text joined, each tool call paired with its result. */
export function toBlocks(events: RunEvent[]): Block[] {
  const blocks: Block[] = [];
  const tools = new Map<string, Extract<Block, { kind: "tool" }>>();
  for (const event of events) {
    const last = blocks.at(-1);
    switch (event.type) {
      case "text":
        if (last?.kind === "text") last.text += event.delta;
        else blocks.push({ kind: "text", key: event.seq, text: event.delta });
        break;
      case "tool_call": {
        const block = {
          kind: "tool" as const,
          key: event.seq,
          id: event.id,
          name: event.name,
          input: event.input,
        };
        tools.set(event.id, block);
        blocks.push(block);
        break;
      }
      case "tool_result": {
        const call = tools.get(event.id);
        if (call) call.result = { output: event.output, isError: event.isError };
        else
          blocks.push({
            kind: "tool",
            key: event.seq,
            id: event.id,
            name: "result",
            input: undefined,
            result: { output: event.output, isError: event.isError },
          });
        break;
      }
      case "status":
        // The closing status repeats what the done event says, and a bare "running" what the
        // badge already shows.
        if (FINAL_RUN_STATES.includes(event.state)) break;
        if (event.state === "running" && !event.message) break;
        blocks.push({
          kind: "status",
          key: event.seq,
          text: event.message ? `${event.state}: ${event.message}` : event.state,
        });
        break;
      case "error":
        blocks.push({ kind: "error", key: event.seq, text: event.message });
        break;
      case "done":
        blocks.push({ kind: "done", key: event.seq, exitReason: event.exitReason });
        break;
      case "user":
        blocks.push({ kind: "user", key: event.seq, prompt: event.prompt, turn: event.turn });
        break;
      case "usage":
        break;
    }
  }
  return blocks;
}
