/**
 * Projects and what each agent changed, end to end: a real server, real namespace sandboxes,
 * the built-in agent against the fake providers running a command that edits the project, and
 * git run inside the sandbox to record the diff and the check.
 */
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

interface Run {
  id: string;
  state: string;
  exitReason: string | null;
  cwd: string;
}
interface Changes {
  project: string;
  baseCommit: string | null;
  files: { path: string; status: string }[];
  diff: string;
  diffTruncated: boolean;
  check: { command: string; exitCode: number | null; output: string; outputTruncated: boolean } | null;
  error: string | null;
  usage: { inputTokens: number; outputTokens: number };
  durationMs: number | null;
  costUsd: number | null;
}

let fake: FakeProviders;
let t: TestServer;
let alice: ApiClient;
let sandbox: string;

async function waitForEnd(id: string): Promise<Run> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const run = (await alice.call<Run>("GET", `/v1/runs/${id}`)).body;
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.state)) return run;
    if (Date.now() > deadline) throw new Error(`run still ${run.state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function sh(line: string): Promise<string> {
  const result = await alice.exec(sandbox, ["/bin/sh", "-c", line]);
  const body = result.body as { exitCode: number; stdout: string; stderr: string };
  expect(body.exitCode, body.stderr).toBe(0);
  return body.stdout;
}

describe("projects and run changes", () => {
  beforeAll(async () => {
    fake = await startFakeProviders();
    t = await startTestServer({
      upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
      modelPrices: { "*": { inputPerMTokUsd: 3, outputPerMTokUsd: 15 } },
    });
    alice = await createUser(t.api, "alice");
    await alice.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
    sandbox = await alice.createSandbox();
    // An existing folder with files but no repository: adding it makes the first commit.
    await sh("mkdir -p work/app && cd work/app && printf 'one\\n' > README && printf 'bye\\n' > gone.txt");
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  it("makes an existing folder a project, lists it, and refuses a second one of that name", async () => {
    const added = await alice.call<{ name: string; path: string; head: string | null; check: string | null }>(
      "POST",
      `/v1/sandboxes/${sandbox}/projects`,
      { path: "work/app", check: "grep -q changed README" },
    );
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    expect(added.body).toMatchObject({ name: "app", path: "projects/app", check: "grep -q changed README" });
    expect(added.body.head).toMatch(/^[0-9a-f]{40}$/);
    const listed = await alice.call<{ items: { name: string }[] }>(
      "GET",
      `/v1/sandboxes/${sandbox}/projects`,
    );
    expect(listed.body.items.map((p) => p.name)).toEqual(["app"]);
    const again = await alice.call<{ error: { code: string } }>("POST", `/v1/sandboxes/${sandbox}/projects`, {
      path: "work/app",
    });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("name_taken");
  });

  it("records the diff, the changed files and the project's check when a run ends", async () => {
    fake.setScript([
      {
        toolCall: {
          tool: "run_command",
          arguments: {
            command: "printf 'changed\\n' >> README && printf 'new\\n' > added.txt && rm gone.txt",
          },
        },
      },
      { text: "Edited." },
    ]);
    const started = await alice.call<Run>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "edit the project",
      sandboxId: sandbox,
      project: "projects/app",
    });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const run = await waitForEnd(started.body.id);
    fake.setScript(undefined);
    expect(run.state, run.exitReason ?? "").toBe("succeeded");
    expect(run.cwd).toBe("projects/app");
    const changes = await alice.call<Changes>("GET", `/v1/runs/${run.id}/changes`);
    expect(changes.status, JSON.stringify(changes.body)).toBe(200);
    expect(changes.body.error).toBeNull();
    expect(changes.body.baseCommit).toMatch(/^[0-9a-f]{40}$/);
    expect([...changes.body.files].sort((a, b) => (a.path < b.path ? -1 : 1))).toEqual([
      { path: "README", status: "M" },
      { path: "added.txt", status: "A" },
      { path: "gone.txt", status: "D" },
    ]);
    expect(changes.body.diff).toContain("+changed");
    expect(changes.body.diff).toContain("-bye");
    expect(changes.body.diffTruncated).toBe(false);
    expect(changes.body.check).toMatchObject({ command: "grep -q changed README", exitCode: 0 });
    // Time, tokens and cost (by the price table's "*" entry) beside the diff.
    const { inputTokens, outputTokens } = changes.body.usage;
    expect(inputTokens).toBeGreaterThan(0);
    expect(changes.body.costUsd).toBeCloseTo((inputTokens * 3 + outputTokens * 15) / 1_000_000, 12);
    expect(changes.body.durationMs).toBeGreaterThanOrEqual(0);
    // The agent's own index is untouched: nothing was staged for it.
    expect(await sh("cd projects/app && git diff --cached --name-only")).toBe("");
  });

  it("cuts a huge diff at its bound and says so; a failing check keeps its exit code and output", async () => {
    fake.setScript([
      {
        toolCall: {
          tool: "run_command",
          arguments: { command: "head -c 3000000 /dev/zero | tr '\\0' 'x' | fold -w 100 > big.txt" },
        },
      },
      { text: "Done." },
    ]);
    const started = await alice.call<Run>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "make a big file",
      sandboxId: sandbox,
      project: "projects/app",
      // A check that floods its output: the end (where a verdict is) is kept, within the bound.
      check: "echo checking; head -c 3000000 /dev/zero | tr '\\0' y; echo; echo verdict-line; exit 3",
    });
    const run = await waitForEnd(started.body.id);
    fake.setScript(undefined);
    expect(run.state, run.exitReason ?? "").toBe("succeeded");
    const changes = (await alice.call<Changes>("GET", `/v1/runs/${run.id}/changes`)).body;
    expect(changes.diffTruncated).toBe(true);
    expect(Buffer.byteLength(changes.diff)).toBeLessThanOrEqual(1024 * 1024 + 3);
    expect(changes.check).toMatchObject({ exitCode: 3, outputTruncated: true });
    expect(changes.check?.output.endsWith("verdict-line\n")).toBe(true);
    expect(Buffer.byteLength(changes.check?.output ?? "")).toBeLessThanOrEqual(64 * 1024);
  });

  it("refuses a project that is no repository, a run without one has no changes, and a foreign run is 404", async () => {
    const notRepo = await alice.call<{ error: { code: string } }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "x",
      sandboxId: sandbox,
      project: "work/none",
    });
    expect(notRepo.status).toBe(400);
    expect(notRepo.body.error.code).toBe("not_a_project");
    for (const body of [
      { url: "file:///etc", name: "x" },
      { url: "https://example.test/a.git", ref: "--upload-pack=evil" },
      { path: "/etc" },
      { path: "../x" },
    ]) {
      const response = await alice.call("POST", `/v1/sandboxes/${sandbox}/projects`, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    fake.setScript([{ text: "Nothing to do." }]);
    const plain = await alice.call<Run>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "hi",
      sandboxId: sandbox,
    });
    await waitForEnd(plain.body.id);
    fake.setScript(undefined);
    expect((await alice.call("GET", `/v1/runs/${plain.body.id}/changes`)).status).toBe(404);
    const bob = await createUser(t.api, "bob");
    expect((await bob.call("GET", `/v1/runs/${plain.body.id}/changes`)).status).toBe(404);
    expect((await bob.call("GET", `/v1/sandboxes/${sandbox}/projects`)).status).toBe(404);
  });

  it("a group run without cwd defaults to the sandbox's only project, each agent diffing its own copy", async () => {
    // Both agents ask at once: each gets the tool call first, then the closing text.
    fake.setScript((view) =>
      view.lastIsToolResult
        ? { text: "Done." }
        : { toolCall: { tool: "run_command", arguments: { command: "printf 'group\\n' > group.txt" } } },
    );
    const started = await alice.call<{ runs: Run[] }>("POST", "/v1/runs", {
      agents: ["builtin", "builtin"],
      prompt: "add a file",
      sandboxId: sandbox,
    });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const head = (await sh("git -C projects/app rev-parse HEAD")).trim();
    for (const begun of started.body.runs) {
      const run = await waitForEnd(begun.id);
      expect(run.state, run.exitReason ?? "").toBe("succeeded");
      const changes = (await alice.call<Changes>("GET", `/v1/runs/${run.id}/changes`)).body;
      expect(changes.project).toBe("projects/app");
      expect(changes.files.map((f) => f.path)).toContain("group.txt");
      // The copy started from the project's repository and files, not an empty folder.
      expect(run.cwd).toBe(`runs/${run.id}`);
      expect(changes.baseCommit).toBe(head);
      // An empty folder would show README deleted; the copy holds the project's edited one.
      expect(changes.files).toContainEqual({ path: "README", status: "M" });
    }
    fake.setScript(undefined);
  });

  it("a group in a sandbox with several projects must name one; project and cwd together are refused", async () => {
    await sh("mkdir -p work/second && echo x > work/second/x.txt");
    expect(
      (await alice.call("POST", `/v1/sandboxes/${sandbox}/projects`, { path: "work/second" })).status,
    ).toBe(201);
    const group = await alice.call<{ error: { code: string; message: string } }>("POST", "/v1/runs", {
      agents: ["builtin", "builtin"],
      prompt: "x",
      sandboxId: sandbox,
    });
    expect(group.status).toBe(400);
    expect(group.body.error.code).toBe("project_required");
    expect(group.body.error.message).toContain("projects/second");
    const both = await alice.call<{ error: { code: string } }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "x",
      sandboxId: sandbox,
      project: "projects/app",
      cwd: "work",
    });
    expect(both.status).toBe(400);
  });

  it("unpacks an uploaded archive into a new project, its files the first commit", async () => {
    await sh(
      "mkdir -p uploads src-tree/lib && echo hi > src-tree/lib/a.txt && tar -czf uploads/tool.tgz -C src-tree .",
    );
    const added = await alice.call<{ name: string; path: string; head: string | null }>(
      "POST",
      `/v1/sandboxes/${sandbox}/projects`,
      { archive: "uploads/tool.tgz" },
    );
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    expect(added.body).toMatchObject({ name: "tool", path: "projects/tool" });
    expect(added.body.head).toMatch(/^[0-9a-f]{40}$/);
    expect(await sh("git -C projects/tool ls-files")).toBe("lib/a.txt\n");
    const broken = await alice.call<{ error: { code: string } }>(
      "POST",
      `/v1/sandboxes/${sandbox}/projects`,
      {
        archive: "uploads/missing.tgz",
      },
    );
    expect(broken.status).toBe(422);
    expect(broken.body.error.code).toBe("command_failed");
    // A failed unpack leaves no half-made project behind.
    expect(await sh("test -e projects/missing && echo there || echo gone")).toBe("gone\n");
  });
});
