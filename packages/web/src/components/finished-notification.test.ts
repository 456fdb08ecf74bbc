import { describe, expect, it } from "vitest";
import { describeFinished } from "./finished-notification";

const run = (id: string, state: string, agent = "claude", groupId: string | null = null) => ({
  id,
  agent,
  prompt: "Add a README\nthat explains the tests",
  state,
  groupId,
});

describe("describeFinished", () => {
  it("names a lone run's agent and outcome, and opens its page", () => {
    expect(describeFinished(run("run_1", "succeeded"))).toEqual({
      title: "Claude Code finished",
      body: "Add a README that explains the tests",
      tag: "polydev-run-run_1",
      href: "/runs/run_1",
    });
    expect(describeFinished(run("run_2", "timed_out", "codex"))?.title).toBe("Codex timed out");
    expect(describeFinished(run("run_3", "failed", "builtin"))?.title).toBe("Built-in agent failed");
  });

  it("says nothing of a run still going, or of a lone run the user cancelled", () => {
    expect(describeFinished(run("run_1", "running"))).toBeUndefined();
    expect(describeFinished(run("run_1", "cancelled"))).toBeUndefined();
  });

  it("announces a group once its last agent has ended, with every agent's outcome", () => {
    const a = run("run_a", "succeeded", "claude", "grp_1");
    const b = run("run_b", "running", "codex", "grp_1");
    expect(describeFinished(a, [a, b])).toBeUndefined();
    const bDone = { ...b, state: "failed" };
    expect(describeFinished(bDone, [a, bDone])).toEqual({
      title: "2 agents ended, 1 failed",
      body: "Add a README that explains the tests\nClaude Code finished, Codex failed",
      tag: "polydev-group-grp_1",
      href: "/groups/grp_1",
    });
    const bGood = { ...b, state: "succeeded" };
    expect(describeFinished(bGood, [a, bGood])?.title).toBe("All 2 agents finished");
  });

  it("waits when the group's runs are unknown, and cuts a long prompt", () => {
    expect(describeFinished(run("run_a", "succeeded", "claude", "grp_1"))).toBeUndefined();
    const long = { ...run("run_1", "succeeded"), prompt: "x".repeat(500) };
    const body = describeFinished(long)?.body ?? "";
    expect(body.length).toBe(120);
    expect(body.endsWith("…")).toBe(true);
  });
});
