/**
 * `polydev run keep`, run as a child process against a real server (real SQLite, a real
 * bubblewrap sandbox, the fake provider APIs on loopback, real git in the sandbox).
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

async function sh(line: string): Promise<string> {
  const result = await user.exec(sandbox, ["/bin/sh", "-c", line]);
  const body = result.body as { exitCode: number; stdout: string; stderr: string };
  expect(body.exitCode, body.stderr).toBe(0);
  return body.stdout;
}

/** A built-in run in the project, started with the CLI; its id. */
async function runInProject(command: string): Promise<string> {
  fake.setScript([{ toolCall: { tool: "run_command", arguments: { command } } }, { text: "Done." }]);
  const ran = await runCli(
    ["run", "--agent", "builtin", "--sandbox", sandbox, "--project", "projects/app", "edit"],
    { env: loggedIn() },
  );
  fake.setScript(undefined);
  expect(ran.code, ran.stderr).toBe(0);
  const runId = /run (run_[A-Za-z0-9_-]+)/.exec(ran.stderr)?.[1];
  if (!runId) throw new Error(`no run id in: ${ran.stderr}`);
  return runId;
}

beforeAll(async () => {
  fake = await startFakeProviders();
  t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
  user = await createUser(t.api, "cli-keep");
  await user.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
  home = await mkdtemp(join(tmpdir(), "polydev-cli-home-"));
  sandbox = await user.createSandbox();
  await user.exec(sandbox, ["/bin/sh", "-c", "mkdir -p src/app && echo one > src/app/notes.txt"]);
  const added = await user.call("POST", `/v1/sandboxes/${sandbox}/projects`, { path: "src/app" });
  expect(added.status, JSON.stringify(added.body)).toBe(201);
}, 120_000);
afterAll(async () => {
  await t?.close();
  await fake?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("polydev run keep", () => {
  it("keeps a run's change on the named branch and merges it", async () => {
    const runId = await runInProject("echo two >> notes.txt");
    const kept = await runCli(["run", "keep", runId, "--branch", "cli-kept", "--message", "Append two"], {
      env: loggedIn(),
    });
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stdout).toMatch(
      /^kept on branch cli-kept \([0-9a-f]{12}\)\nmerged into the project's current branch\n$/,
    );
    expect(await sh("git -C projects/app log -1 --format=%s")).toBe("Append two\n");
    expect(await sh("cat projects/app/notes.txt")).toBe("one\ntwo\n");
  });

  it("lists the conflicting files and exits 1 on a conflict; usage errors exit 2", async () => {
    const runId = await runInProject("echo three-by-agent >> notes.txt");
    await sh(
      "cd projects/app && git checkout -q -- . && echo three-by-human >> notes.txt && git -c user.name=H -c user.email=h@h commit -qam human",
    );
    const conflicted = await runCli(["run", "keep", runId, "--json"], { env: loggedIn() });
    expect(conflicted.code, conflicted.stderr).toBe(1);
    expect(conflicted.stderr).toContain("conflict: notes.txt");
    expect(await sh("git -C projects/app status --porcelain")).toBe("");
    const usage = await runCli(["run", "keep"], { env: loggedIn() });
    expect(usage.code).toBe(2);
    const badBranch = await runCli(["run", "keep", runId, "--branch", "a..b"], { env: loggedIn() });
    expect(badBranch.code).toBe(1);
    expect(badBranch.stderr).toContain("..");
  });
});
