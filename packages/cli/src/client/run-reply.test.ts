/**
 * `polydev run reply`, run as a child process against a real server (real SQLite, a real
 * bubblewrap sandbox, the fake provider APIs on loopback): the follow-up streams like
 * `polydev run`, only its own turn, and a run still working is refused with the API's words.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "../../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../../server/src/testing/harness.js";
import { runCli } from "../testing/cli-process.js";

let fake: FakeProviders;
let t: TestServer;
let user: ApiClient;
let home: string;
let sandbox: string;

function loggedIn(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, "xdg"),
    POLYDEV_URL: t.url,
    POLYDEV_API_KEY: user.key,
  };
}

beforeAll(async () => {
  fake = await startFakeProviders();
  t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
  user = await createUser(t.api, "cli-reply");
  await user.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
  home = await mkdtemp(join(tmpdir(), "polydev-cli-home-"));
  sandbox = await user.createSandbox();
}, 120_000);
afterAll(async () => {
  await t?.close();
  await fake?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("polydev run reply", () => {
  it("continues a finished run and streams only the follow-up's turn", async () => {
    const ran = await runCli(["run", "--agent", "builtin", "--sandbox", sandbox, "remember the word otter"], {
      env: loggedIn(),
    });
    expect(ran.code, ran.stderr).toBe(0);
    const runId = /run (run_[A-Za-z0-9_-]+)/.exec(ran.stderr)?.[1];
    expect(runId, ran.stderr).toBeDefined();

    const replied = await runCli(["run", "reply", String(runId), "which", "animal?"], { env: loggedIn() });
    expect(replied.code, replied.stderr).toBe(0);
    expect(replied.stdout).toContain('Following up: you asked "which animal?"');
    expect(replied.stdout).toContain('after you first asked "remember the word otter"');
    // Only this turn: the first turn's greeting is not printed again.
    expect(replied.stdout).not.toContain("Hello from the fake");
    expect(replied.stderr).toContain("» which animal?");
    expect(replied.stderr).toContain(`✓ succeeded`);

    const json = await runCli(["run", "reply", "--json", String(runId), "and again"], { env: loggedIn() });
    expect(json.code, json.stderr).toBe(0);
    const events = json.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; turn?: number });
    expect(events[0]).toMatchObject({ type: "user", turn: 3 });
    expect(events.at(-1)?.type).toBe("done");
  }, 120_000);

  it("with --group, sends the follow-up to every run of a group and prefixes each one's lines", async () => {
    const started = await user.call<{ groupId: string; runs: { id: string }[] }>("POST", "/v1/runs", {
      agents: ["builtin", "builtin"],
      prompt: "remember the word lynx",
      sandboxId: sandbox,
      cwd: "cli-group",
    });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    for (const run of started.body.runs) {
      for (let i = 0; i < 300; i++) {
        const state = (await user.call<{ state: string }>("GET", `/v1/runs/${run.id}`)).body.state;
        if (state !== "queued" && state !== "running") break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const replied = await runCli(["run", "reply", "--group", started.body.groupId, "which cat?"], {
      env: loggedIn(),
    });
    expect(replied.code, replied.stderr).toBe(0);
    const answers = replied.stdout.split("\n").filter((line) => line.includes('you asked "which cat?"'));
    expect(answers).toHaveLength(2);
    for (const line of answers) expect(line).toMatch(/^\[builtin\] Following up/);
  }, 120_000);

  it("says what is wrong: a run still working, no prompt, an unknown run", async () => {
    // A word a second: still streaming while the CLI starts (it is cancelled once refused).
    fake.setScript([{ text: "a slow answer ".repeat(30), delayMs: 1000 }]);
    try {
      const started = await user.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "slow",
        sandboxId: sandbox,
      });
      const busy = await runCli(["run", "reply", started.body.id, "hurry up"], { env: loggedIn() });
      expect(busy.code).not.toBe(0);
      expect(busy.stderr).toContain("send the follow-up when its turn has ended");
      await user.call("POST", `/v1/runs/${started.body.id}/cancel`);
    } finally {
      fake.setScript(undefined);
    }
    const noPrompt = await runCli(["run", "reply", "run_x"], { env: loggedIn(), input: "" });
    expect(noPrompt.code).toBe(2);
    expect(noPrompt.stderr).toContain("what should the agent do next?");
    const unknown = await runCli(["run", "reply", "run_missing", "hello"], { env: loggedIn() });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("run_missing does not exist");
  }, 120_000);
});
