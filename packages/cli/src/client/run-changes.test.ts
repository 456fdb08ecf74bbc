/**
 * `polydev run --project` and `polydev run changes`, run as child processes against a real
 * server (real SQLite, a real bubblewrap sandbox, the fake provider APIs on loopback).
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
  user = await createUser(t.api, "cli-changes");
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

describe("polydev run --project and polydev run changes", () => {
  it("runs in a project, then prints the changed files, the check and a patch", async () => {
    fake.setScript([
      { toolCall: { tool: "run_command", arguments: { command: "echo two >> notes.txt" } } },
      { text: "Appended." },
    ]);
    const ran = await runCli(
      [
        "run",
        "--agent",
        "builtin",
        "--sandbox",
        sandbox,
        "--project",
        "projects/app",
        "--check",
        "exit 4",
        "append",
      ],
      { env: loggedIn() },
    );
    fake.setScript(undefined);
    expect(ran.code, ran.stderr).toBe(0);
    const runId = /run (run_[A-Za-z0-9_-]+)/.exec(ran.stderr)?.[1];
    expect(runId, ran.stderr).toBeDefined();

    const shown = await runCli(["run", "changes", String(runId)], { env: loggedIn() });
    // The check failed (exit 4): the command says so with its own exit code.
    expect(shown.code, shown.stderr).toBe(1);
    expect(shown.stderr).toContain("M  notes.txt");
    expect(shown.stderr).toContain("✗ check `exit 4` exited 4");
    expect(shown.stdout).toMatch(/^diff --git a\/notes.txt b\/notes.txt/);
    expect(shown.stdout).toContain("+two");

    const json = await runCli(["run", "changes", "--json", String(runId)], { env: loggedIn() });
    expect(JSON.parse(json.stdout)).toMatchObject({
      project: "projects/app",
      files: [{ path: "notes.txt", status: "M" }],
    });

    const missing = await runCli(["run", "changes", "run_nope"], { env: loggedIn() });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("(not_found)");
    const usage = await runCli(["run", "changes"], { env: loggedIn() });
    expect(usage.code).toBe(2);
  });
});
