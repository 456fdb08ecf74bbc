import type { RunEvent } from "../api/types";
import type { Block } from "./run-blocks";
import { toBlocks } from "./run-blocks";

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

/**
 * A run's output; once it has follow-ups it reads as a conversation, so its first prompt (the
 * run's own, which no event carries) opens it.
 */
export function RunOutput({ events, prompt }: { events: RunEvent[]; prompt?: string | undefined }) {
  const blocks = toBlocks(events);
  if (blocks.length === 0) return <p className="muted">Waiting for output…</p>;
  const conversation = prompt !== undefined && blocks.some((b) => b.kind === "user");
  return (
    <div className="run-output" data-testid="run-output">
      {conversation ? <BlockView block={{ kind: "user", key: 0, prompt, turn: 1 }} /> : null}
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
    case "user":
      return (
        <div className="run-user" data-testid="run-user-message" data-turn={block.turn}>
          <span className="small muted">You (turn {block.turn})</span>
          <div className="run-user-text">{block.prompt}</div>
        </div>
      );
  }
  return null;
}
