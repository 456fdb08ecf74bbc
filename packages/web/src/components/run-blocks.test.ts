import { describe, expect, it } from "vitest";
import type { RunEvent } from "../api/types";
import { toBlocks } from "./run-blocks";

const at = "2026-01-01T00:00:00.000Z";

describe("toBlocks", () => {
  it("joins text deltas, pairs each tool call with its result, and drops the closing status", () => {
    const events: RunEvent[] = [
      { seq: 1, at, type: "status", state: "running" },
      { seq: 1.5, at, type: "status", state: "running", message: "in sbx_1" },
      { seq: 2, at, type: "text", delta: "Writing " },
      { seq: 3, at, type: "text", delta: "it." },
      { seq: 4, at, type: "tool_call", id: "t1", name: "write_file", input: { path: "a.txt" } },
      { seq: 5, at, type: "usage", inputTokens: 10, outputTokens: 2 },
      { seq: 6, at, type: "tool_result", id: "t1", output: "wrote 2 bytes", isError: false },
      { seq: 7, at, type: "text", delta: "Done." },
      { seq: 8, at, type: "status", state: "succeeded", message: "completed" },
      { seq: 9, at, type: "done", finalText: "Done.", exitReason: "completed" },
    ];
    expect(toBlocks(events)).toEqual([
      { kind: "status", key: 1.5, text: "running: in sbx_1" },
      { kind: "text", key: 2, text: "Writing it." },
      {
        kind: "tool",
        key: 4,
        id: "t1",
        name: "write_file",
        input: { path: "a.txt" },
        result: { output: "wrote 2 bytes", isError: false },
      },
      { kind: "text", key: 7, text: "Done." },
      { kind: "done", key: 9, exitReason: "completed" },
    ]);
  });

  it("reads turns as a conversation: a follow-up is a user block between one turn's done and the next text", () => {
    const blocks = toBlocks([
      { seq: 1, at, type: "text", delta: "Hello." },
      { seq: 2, at, type: "done", finalText: "Hello.", exitReason: "completed" },
      { seq: 3, at, type: "user", prompt: "and now?", turn: 2 },
      { seq: 4, at, type: "status", state: "running" },
      { seq: 5, at, type: "text", delta: "Now " },
      { seq: 6, at, type: "text", delta: "this." },
      { seq: 7, at, type: "done", finalText: "Now this.", exitReason: "completed" },
    ]);
    expect(blocks).toEqual([
      { kind: "text", key: 1, text: "Hello." },
      { kind: "done", key: 2, exitReason: "completed" },
      { kind: "user", key: 3, prompt: "and now?", turn: 2 },
      { kind: "text", key: 5, text: "Now this." },
      { kind: "done", key: 7, exitReason: "completed" },
    ]);
  });

  it("keeps a result whose call it never saw, and errors as their own blocks", () => {
    const blocks = toBlocks([
      { seq: 1, at, type: "tool_result", id: "lost", output: "boom", isError: true },
      { seq: 2, at, type: "error", message: "provider refused" },
    ]);
    expect(blocks).toEqual([
      {
        kind: "tool",
        key: 1,
        id: "lost",
        name: "result",
        input: undefined,
        result: { output: "boom", isError: true },
      },
      { kind: "error", key: 2, text: "provider refused" },
    ]);
  });
});
