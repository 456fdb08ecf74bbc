import type { RunConversationRecord, RunRecord } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { describe, expect, it } from "vitest";
import { acceptSessionId, encodeHistory, MAX_HISTORY_BYTES, nextTurn } from "./run-turns.js";

const run = (patch: Partial<RunRecord> = {}): RunRecord => ({
  id: "run_1",
  userId: "usr_1",
  sandboxId: "sbx_1",
  groupId: null,
  agent: "claude",
  prompt: "first",
  model: null,
  cwd: ".",
  state: "succeeded",
  exitReason: "completed",
  finalText: "hi",
  inputTokens: 10,
  outputTokens: 2,
  timeoutMs: 1000,
  maxTurns: null,
  createdAt: 1,
  startedAt: 1,
  endedAt: 2,
  ...patch,
});
const conversation = (patch: Partial<RunConversationRecord> = {}): RunConversationRecord => ({
  runId: "run_1",
  turns: 1,
  sessionId: "5b1e-9",
  history: null,
  eventBytes: 100,
  updatedAt: 2,
  ...patch,
});
const input = { sandboxState: "running", lastSeq: 7, prompt: "next", maxEventBytes: 1000 };

function refusal(fn: () => unknown): { code: string; status: number; message: string } {
  try {
    fn();
  } catch (error) {
    if (error instanceof PolydevError)
      return { code: error.code, status: error.status, message: error.message };
    throw error;
  }
  throw new Error("it was not refused");
}

describe("the next turn of a run", () => {
  it("continues after the last event, with the session, the tokens so far and the bytes used", () => {
    expect(nextTurn({ ...input, run: run(), conversation: conversation() })).toEqual({
      number: 2,
      prompt: "next",
      afterSeq: 7,
      eventBytes: 100,
      sessionId: "5b1e-9",
      history: undefined,
      tokens: { input: 10, output: 2 },
    });
    const builtin = nextTurn({
      ...input,
      run: run({ agent: "builtin" }),
      conversation: conversation({
        turns: 3,
        sessionId: null,
        history: '[{"role":"user","content":"first"}]',
      }),
    });
    expect(builtin).toMatchObject({ number: 4, history: [{ role: "user", content: "first" }] });
  });

  it("refuses a run still working (409 run_in_progress), one whose sandbox is gone (410) and runs at their bounds", () => {
    for (const state of ["queued", "running"])
      expect(
        refusal(() => nextTurn({ ...input, run: run({ state }), conversation: conversation() })),
      ).toMatchObject({
        code: "run_in_progress",
        status: 409,
      });
    for (const sandboxState of ["destroyed", "destroying", "failed", undefined])
      expect(
        refusal(() => nextTurn({ ...input, sandboxState, run: run(), conversation: conversation() })),
      ).toMatchObject({ code: "sandbox_gone", status: 410 });
    expect(refusal(() => nextTurn({ ...input, run: run(), conversation: undefined })).code).toBe("conflict");
    expect(
      refusal(() => nextTurn({ ...input, run: run(), conversation: conversation({ eventBytes: 1000 }) }))
        .code,
    ).toBe("conversation_too_long");
    expect(
      refusal(() => nextTurn({ ...input, run: run({ agent: "builtin" }), conversation: conversation() }))
        .code,
    ).toBe("conversation_too_long");
    expect(
      refusal(() => nextTurn({ ...input, run: run(), conversation: conversation({ sessionId: null }) }))
        .message,
    ).toContain("named no session");
    // The CLIs take the prompt as one argument; the built-in agent takes longer ones.
    const long = "x".repeat(128 * 1024);
    expect(
      refusal(() => nextTurn({ ...input, prompt: long, run: run(), conversation: conversation() })).code,
    ).toBe("invalid_request");
    expect(
      nextTurn({
        ...input,
        prompt: long,
        run: run({ agent: "builtin" }),
        conversation: conversation({ history: "[]" }),
      }).prompt,
    ).toBe(long);
  });
});

describe("what a turn keeps", () => {
  it("keeps a session id only when it looks like one: bounded, never a flag", () => {
    expect(acceptSessionId("0199a3b2-7c1e-7f00-9a4b-1f2e3d4c5b6a")).toBe(
      "0199a3b2-7c1e-7f00-9a4b-1f2e3d4c5b6a",
    );
    for (const printed of [
      undefined,
      "",
      "--dangerously-skip-permissions",
      "a b",
      "x".repeat(201),
      "id\n--flag",
    ])
      expect(acceptSessionId(printed)).toBeUndefined();
  });

  it("stores the built-in agent's history up to its bound, and none past it", () => {
    expect(encodeHistory([{ role: "user", content: "hi" }])).toBe('[{"role":"user","content":"hi"}]');
    expect(encodeHistory(undefined)).toBeNull();
    expect(encodeHistory([{ role: "tool", content: "y".repeat(MAX_HISTORY_BYTES) }])).toBeNull();
  });
});
