import type { RunEvent } from "../api/types";
import { FINAL_RUN_STATES } from "../api/types";

type Block =
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
  | { kind: "done"; key: number; exitReason: string };

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
        // The closing status repeats what the done event says.
        if (FINAL_RUN_STATES.includes(event.state)) break;
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
      case "usage":
        break;
    }
  }
  return blocks;
}

function pretty(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

function toolSummary(input: unknown): string {
  if (input && typeof input === "object") {
    const record = input as Record<string, unknown>;
    for (const key of ["command", "cmd", "path", "file_path", "pattern", "url"]) {
      const value = record[key];
      if (typeof value === "string") return value.length > 80 ? `${value.slice(0, 80)}…` : value;
    }
  }
  return "";
}

export function RunOutput({ events }: { events: RunEvent[] }) {
  const blocks = toBlocks(events);
  if (blocks.length === 0) return <p className="muted">Waiting for output…</p>;
  return (
    <div className="run-output" data-testid="run-output">
      {blocks.map((block) => (
        <BlockView key={block.key} block={block} />
      ))}
    </div>
  );
}

function BlockView({ block }: { block: Block }) {
  switch (block.kind) {
    case "text":
      return <div className="run-text">{block.text}</div>;
    case "tool":
      return (
        <details className={`tool${block.result?.isError ? " tool-error" : ""}`}>
          <summary>
            <span className="tool-name">⚙ {block.name}</span>{" "}
            <span className="mono small muted">{toolSummary(block.input)}</span>
            {block.result ? (
              <span className={`tool-state ${block.result.isError ? "bad" : "good"}`}>
                {block.result.isError ? "failed" : "done"}
              </span>
            ) : (
              <span className="tool-state muted">running…</span>
            )}
          </summary>
          {block.input !== undefined ? (
            <>
              <h4>Input</h4>
              <pre>{pretty(block.input)}</pre>
            </>
          ) : null}
          {block.result ? (
            <>
              <h4>Result</h4>
              <pre>{block.result.output || "(no output)"}</pre>
            </>
          ) : null}
        </details>
      );
    case "status":
      return <div className="run-status">{block.text}</div>;
    case "error":
      return (
        <div className="notice notice-error" role="alert">
          {block.text}
        </div>
      );
    case "done":
      return <div className="run-status run-done">finished: {block.exitReason}</div>;
  }
  return null;
}
