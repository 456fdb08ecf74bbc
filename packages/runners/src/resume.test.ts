/**
 * Each CLI runner resumes a session with the CLI's own flag and reads the session id from the
 * CLI's own output (the lines below are the shapes the pinned versions print; the real CLIs
 * resuming against the fake providers are in packages/server/src/run-follow-ups.test.ts).
 */
import { describe, expect, it } from "vitest";
import { claudeRunner } from "./claude.js";
import { codexRunner } from "./codex.js";
import { geminiRunner } from "./gemini.js";

const request = { prompt: "and now?", gatewayPort: 4000 };

describe("resuming a CLI session", () => {
  it("claude: --resume ID; the id from any stream-json event", () => {
    expect(claudeRunner.invocation(request).argv).not.toContain("--resume");
    const argv = claudeRunner.invocation({ ...request, resumeSessionId: "6f1c-a" }).argv;
    expect(argv.slice(argv.indexOf("--resume"), argv.indexOf("--resume") + 2)).toEqual([
      "--resume",
      "6f1c-a",
    ]);
    expect(argv[argv.indexOf("-p") + 1]).toBe("and now?");
    const parser = claudeRunner.parser();
    expect(parser.sessionId?.()).toBeUndefined();
    parser.line(JSON.stringify({ type: "system", subtype: "init", session_id: "6f1c-a" }));
    parser.line("not json");
    expect(parser.sessionId?.()).toBe("6f1c-a");
  });

  it("codex: exec … resume ID PROMPT; the id from thread.started", () => {
    const fresh = codexRunner.invocation(request).argv;
    expect(fresh).not.toContain("resume");
    expect(fresh.at(-1)).toBe("and now?");
    const argv = codexRunner.invocation({ ...request, resumeSessionId: "0199-b" }).argv;
    expect(argv.slice(-3)).toEqual(["resume", "0199-b", "and now?"]);
    expect(argv.slice(0, 2)).toEqual(["codex", "exec"]);
    const parser = codexRunner.parser();
    parser.line(JSON.stringify({ type: "thread.started", thread_id: "0199-b" }));
    parser.line(JSON.stringify({ type: "turn.started" }));
    expect(parser.sessionId?.()).toBe("0199-b");
  });

  it("gemini: --resume ID; the id from the init event", () => {
    expect(geminiRunner.invocation(request).argv).not.toContain("--resume");
    const argv = geminiRunner.invocation({ ...request, resumeSessionId: "c0ffee" }).argv;
    expect(argv.slice(argv.indexOf("--resume"), argv.indexOf("--resume") + 2)).toEqual([
      "--resume",
      "c0ffee",
    ]);
    const parser = geminiRunner.parser();
    parser.line(JSON.stringify({ type: "init", session_id: "c0ffee", model: "gemini-2.5-flash" }));
    expect(parser.sessionId?.()).toBe("c0ffee");
  });
});
