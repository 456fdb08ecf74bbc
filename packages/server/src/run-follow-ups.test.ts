/**
 * Follow-ups: a finished run takes another turn in the same session. The real claude, codex and
 * gemini CLIs resume their own session inside a real sandbox against the fake providers (whose
 * recorded requests show the first turn sent back), the built-in agent keeps its history, a group
 * takes a follow-up as a whole, and what cannot go on answers a clear 4xx.
 */
import { existsSync } from "node:fs";
import type { FakeProviders, RecordedRequest } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, readSse, startTestServer } from "./testing/harness.js";

const installed = ["claude", "codex", "gemini"].every((cli) => existsSync(`/usr/local/bin/${cli}`));
const REAL_KEY = "sk-real-provider-key-123456";

let fake: FakeProviders;
let t: TestServer;
let alice: ApiClient;
let bob: ApiClient;
let sandbox: string;

interface Run {
  id: string;
  state: string;
  finalText: string | null;
  exitReason: string | null;
  cwd: string;
  sandboxId: string;
  groupId: string | null;
  usage: { inputTokens: number; outputTokens: number };
}
interface Turn {
  run: Run;
  turn: number;
  afterSeq: number;
}
interface ApiError {
  error: { code: string; message: string };
}

async function waitForEnd(id: string, timeoutMs = 90_000): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = (await alice.call<Run>("GET", `/v1/runs/${id}`)).body;
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.state)) return run;
    if (Date.now() > deadline) throw new Error(`run still ${run.state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function events(id: string, after = 0) {
  const response = await fetch(`${t.url}/v1/runs/${id}/events?after=${after}`, {
    headers: { authorization: `Bearer ${alice.key}` },
  });
  return readSse(response);
}

/** The JSON of every model request the fake received since `from` (its routers' calls included). */
const bodiesSince = (from: number): string[] =>
  fake.requests.slice(from).map((r: RecordedRequest) => JSON.stringify(r.body ?? ""));

async function startRun(body: Record<string, unknown>): Promise<Run> {
  const started = await alice.call<Run>("POST", "/v1/runs", { sandboxId: sandbox, ...body });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  return started.body;
}

async function followUp(id: string, prompt: string): Promise<Turn> {
  const sent = await alice.call<Turn>("POST", `/v1/runs/${id}/messages`, { prompt });
  expect(sent.status, JSON.stringify(sent.body)).toBe(202);
  return sent.body;
}

/**
 * A run, then a follow-up: the turn's events follow the first turn's with the next sequence
 * number and open with the user's message; the fake's answer quotes both prompts, which it only
 * can when the agent sent the first turn back.
 */
async function conversation(body: Record<string, unknown>, first: string, second: string) {
  const run = await startRun({ ...body, prompt: first });
  const ended = await waitForEnd(run.id);
  expect(ended.state, ended.exitReason ?? "").toBe("succeeded");
  const firstTurn = await events(run.id);
  const lastSeq = Number(firstTurn.at(-1)?.id);
  const from = fake.requests.length;
  const turn = await followUp(run.id, second);
  expect(turn.turn).toBe(2);
  expect(turn.afterSeq).toBe(lastSeq);
  expect(turn.run.state).toBe("running");
  const after = await waitForEnd(run.id);
  expect(after.state, after.exitReason ?? "").toBe("succeeded");
  expect(after.finalText).toContain(`you asked "${second}"`);
  expect(after.finalText).toContain(`after you first asked "${first}"`);
  // The usage is the sum over both turns.
  expect(after.usage.inputTokens).toBeGreaterThan(ended.usage.inputTokens);
  const secondTurn = await events(run.id, lastSeq);
  expect(secondTurn.map((e) => Number(e.id))).toEqual(secondTurn.map((_, i) => lastSeq + 1 + i));
  expect(secondTurn[0]?.event).toBe("user");
  expect(secondTurn[0]?.data).toMatchObject({ prompt: second, turn: 2 });
  expect(secondTurn.at(-1)?.event).toBe("done");
  // A reader from the start sees the whole conversation, both turns, in one stream.
  const whole = await events(run.id);
  expect(whole.filter((e) => e.event === "done")).toHaveLength(2);
  expect(whole.length).toBe(firstTurn.length + secondTurn.length);
  // The agent sent its first turn back to the provider with the follow-up.
  const sent = bodiesSince(from);
  expect(sent.some((b) => b.includes(first) && b.includes(second))).toBe(true);
  return { run: after, sent };
}

describe("follow-ups", () => {
  beforeAll(async () => {
    fake = await startFakeProviders();
    t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
    alice = await createUser(t.api, "alice");
    bob = await createUser(t.api, "bob");
    for (const provider of ["anthropic", "openai", "gemini"]) {
      await alice.call("PUT", `/v1/credentials/${provider}`, { apiKey: REAL_KEY });
    }
    sandbox = await alice.createSandbox();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  describe.skipIf(!installed)(
    "with the real CLIs (skipped when scripts/ensure.sh could not install them as root)",
    () => {
      it.each(["claude", "codex", "gemini"])(
        "%s resumes its own session: the provider gets the first turn back with the follow-up",
        async (agent) => {
          await conversation(
            { agent },
            `remember the word pelican-${agent}`,
            `which word did I ask ${agent} to remember?`,
          );
        },
        240_000,
      );
    },
  );

  it.each([
    ["anthropic", "claude-sonnet-4-5"],
    ["openai", "gpt-5"],
    ["gemini", "gemini-2.5-flash"],
  ])(
    "the built-in agent on %s keeps its history across turns",
    async (_provider, model) => {
      const { sent } = await conversation(
        { agent: "builtin", model },
        `remember the colour teal for ${model}`,
        "which colour was it?",
      );
      // The first turn's answer went back too, as the assistant's message.
      expect(sent.some((b) => b.includes("Hello from the fake"))).toBe(true);
    },
    120_000,
  );

  it("a run in a project records its changes again at the end of a follow-up, against its first base commit", async () => {
    const sh = async (cmd: string) => (await alice.exec(sandbox, cmd)).body.stdout;
    await sh("mkdir -p work/follow && cd work/follow && printf 'one\\n' > README");
    const added = await alice.call("POST", `/v1/sandboxes/${sandbox}/projects`, { path: "work/follow" });
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    const run = await startRun({
      agent: "builtin",
      prompt: "create file first.txt",
      project: "projects/follow",
    });
    expect((await waitForEnd(run.id)).state).toBe("succeeded");
    const before = (
      await alice.call<{ baseCommit: string; files: { path: string }[] }>("GET", `/v1/runs/${run.id}/changes`)
    ).body;
    expect(before.files.map((f) => f.path)).toEqual(["first.txt"]);
    await followUp(run.id, "create file second.txt");
    expect((await waitForEnd(run.id)).state).toBe("succeeded");
    const after = (
      await alice.call<{ baseCommit: string; files: { path: string }[] }>("GET", `/v1/runs/${run.id}/changes`)
    ).body;
    expect(after.baseCommit).toBe(before.baseCommit);
    expect(after.files.map((f) => f.path).sort()).toEqual(["first.txt", "second.txt"]);
  }, 120_000);

  it("a follow-up to a group goes to each of its runs; a group still working is refused as a whole", async () => {
    // Slow answers keep the group working while the first follow-up arrives.
    fake.setScript((view) =>
      view.prompt === "slow group task"
        ? { text: "working on it slowly ".repeat(5), delayMs: 100 }
        : undefined,
    );
    try {
      const started = await alice.call<{ groupId: string; runs: Run[] }>("POST", "/v1/runs", {
        agents: ["builtin", "builtin"],
        prompt: "slow group task",
        sandboxId: sandbox,
        cwd: "group-work",
      });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      const { groupId, runs } = started.body;
      const early = await alice.call<ApiError>("POST", `/v1/groups/${groupId}/messages`, { prompt: "next" });
      expect(early.status).toBe(409);
      expect(early.body.error.code).toBe("run_in_progress");
      for (const run of runs) expect((await waitForEnd(run.id)).state).toBe("succeeded");
      // Refused as a whole: no run took a turn.
      for (const run of runs) expect((await events(run.id)).some((e) => e.event === "user")).toBe(false);

      const sent = await alice.call<{ groupId: string; turns: Turn[] }>(
        "POST",
        `/v1/groups/${groupId}/messages`,
        {
          prompt: "now the group's second step",
        },
      );
      expect(sent.status, JSON.stringify(sent.body)).toBe(202);
      expect(sent.body.turns.map((turn) => turn.run.id).sort()).toEqual(runs.map((r) => r.id).sort());
      for (const run of runs) {
        const ended = await waitForEnd(run.id);
        expect(ended.state, ended.exitReason ?? "").toBe("succeeded");
        expect(ended.finalText).toContain(`you asked "now the group's second step"`);
      }
      // Another user's group is not found, and neither is a made-up one.
      const foreign = await bob.call<ApiError>("POST", `/v1/groups/${groupId}/messages`, { prompt: "x" });
      expect(foreign.status).toBe(404);
    } finally {
      fake.setScript(undefined);
    }
  }, 120_000);

  it("refuses what cannot go on: a running run (409), a bad body (400), another user's run (404)", async () => {
    fake.setScript((view) =>
      view.prompt === "a slow one"
        ? { text: "taking my time over this answer ".repeat(10), delayMs: 500 }
        : undefined,
    );
    try {
      const run = await startRun({ agent: "builtin", prompt: "a slow one" });
      const busy = await alice.call<ApiError>("POST", `/v1/runs/${run.id}/messages`, { prompt: "hurry" });
      expect(busy.status).toBe(409);
      expect(busy.body.error.code).toBe("run_in_progress");
      expect(busy.body.error.message).toContain(run.id);
      await alice.call("POST", `/v1/runs/${run.id}/cancel`);
      expect((await waitForEnd(run.id)).state).toBe("cancelled");

      for (const body of [{}, { prompt: "" }, { prompt: "a\u0000b" }, { prompt: "x", extra: 1 }]) {
        const bad = await alice.call<ApiError>("POST", `/v1/runs/${run.id}/messages`, body);
        expect(bad.status, JSON.stringify(body)).toBe(400);
      }
      const foreign = await bob.call<ApiError>("POST", `/v1/runs/${run.id}/messages`, { prompt: "hi" });
      expect(foreign.status).toBe(404);
      const missing = await alice.call<ApiError>("POST", "/v1/runs/run_nope/messages", { prompt: "hi" });
      expect(missing.status).toBe(404);
    } finally {
      fake.setScript(undefined);
    }
  }, 60_000);

  it("a sandbox destroyed during a follow-up fails the turn with a reason; after that the run answers 410", async () => {
    const own = await alice.createSandbox();
    const run = await startRun({ agent: "builtin", prompt: "first, quickly", sandboxId: own });
    expect((await waitForEnd(run.id)).state).toBe("succeeded");
    fake.setScript((view) =>
      view.prompt === "then slowly"
        ? { text: "a long answer that the sandbox will not see the end of", delayMs: 300 }
        : undefined,
    );
    try {
      await followUp(run.id, "then slowly");
      const destroyed = await alice.call("DELETE", `/v1/sandboxes/${own}`);
      expect(destroyed.status).toBeLessThan(300);
      const ended = await waitForEnd(run.id);
      expect(ended.state).toBe("failed");
      expect(ended.exitReason).toContain("sandbox");
    } finally {
      fake.setScript(undefined);
    }
    const gone = await alice.call<ApiError>("POST", `/v1/runs/${run.id}/messages`, { prompt: "again" });
    expect(gone.status).toBe(410);
    expect(gone.body.error.code).toBe("sandbox_gone");
    // The server is fine: another run in another sandbox still works.
    const other = await startRun({ agent: "builtin", prompt: "still here?" });
    expect((await waitForEnd(other.id)).state).toBe("succeeded");
  }, 120_000);
});
