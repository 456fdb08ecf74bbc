/**
 * Keeping a run's change, end to end: a real server, real namespace sandboxes without a network,
 * the built-in agent against the fake providers editing a project, real git in the sandbox, a
 * private repository served by the real `git http-backend` on host loopback behind a token, and
 * the fake forge recording the pull request. The token is stored in the vault and reaches the
 * git host only through the server's relay: the sandbox never sees it (escape probe below).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FakeForge, FakeProviders } from "@polydev/fake-providers";
import { startFakeForge, startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHttpServer } from "./testing/git-http-server.js";
import { startGitHttpServer } from "./testing/git-http-server.js";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

const TOKEN = "ghp_private_token_for_tests_0123456789";
const USERNAME = "oauth2";

interface Run {
  id: string;
  state: string;
  exitReason: string | null;
  groupId: string | null;
  sandboxId: string;
}
interface Keep {
  runId: string;
  branch: string;
  commit: string;
  merged: boolean;
  pushed: boolean;
  pullRequestUrl: string | null;
  keptAt: string;
  otherKeptRuns: string[];
}
interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

let fake: FakeProviders;
let forge: FakeForge;
let git: GitHttpServer;
let t: TestServer;
let alice: ApiClient;
let sandbox: string;
let repos: string;
let repoUrl: string;

function bareGit(...args: string[]): string {
  return execFileSync("git", ["--git-dir", join(repos, "org", "app.git"), ...args])
    .toString()
    .trim();
}

async function waitForEnd(id: string): Promise<Run> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const run = (await alice.call<Run>("GET", `/v1/runs/${id}`)).body;
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.state)) return run;
    if (Date.now() > deadline) throw new Error(`run still ${run.state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function sh(line: string, id = sandbox): Promise<string> {
  const result = await alice.exec(id, ["/bin/sh", "-c", line]);
  const body = result.body as { exitCode: number; stdout: string; stderr: string };
  expect(body.exitCode, `${line}: ${body.stderr}`).toBe(0);
  return body.stdout;
}

/** A built-in run in the project whose one tool call is `command`. */
async function runCommand(command: string, project = "projects/app"): Promise<Run> {
  fake.setScript([{ toolCall: { tool: "run_command", arguments: { command } } }, { text: "Done." }]);
  const started = await alice.call<Run>("POST", "/v1/runs", {
    agent: "builtin",
    prompt: `change the project: ${command}`,
    sandboxId: sandbox,
    project,
  });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  const run = await waitForEnd(started.body.id);
  fake.setScript(undefined);
  expect(run.state, run.exitReason ?? "").toBe("succeeded");
  return run;
}

describe("keeping a run's change", () => {
  beforeAll(async () => {
    fake = await startFakeProviders();
    forge = await startFakeForge({ token: TOKEN });
    repos = await mkdtemp(join(tmpdir(), "polydev-keep-git-"));
    const work = join(repos, "work");
    const g = (...args: string[]) =>
      execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@t", ...args], { cwd: work });
    execFileSync("git", ["init", "-q", "-b", "main", work]);
    execFileSync("sh", ["-c", "printf 'line one\\nline two\\n' > README && printf 'x\\n' > other.txt"], {
      cwd: work,
    });
    g("add", "-A");
    g("commit", "-qm", "first");
    execFileSync("git", ["clone", "-q", "--bare", work, join(repos, "org", "app.git")]);
    git = await startGitHttpServer({ root: repos, username: USERNAME, token: TOKEN });
    repoUrl = `${git.url}/org/app.git`;
    t = await startTestServer({
      upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
      // Test servers on loopback over plain http: allowed by the operator's list only.
      gitInsecureHosts: [git.host, new URL(forge.url).host],
    });
    alice = await createUser(t.api, "alice");
    await alice.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
    sandbox = await alice.createSandbox({ network: "none" });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await git?.close();
    await forge?.close();
    await fake?.close();
    if (repos) await rm(repos, { recursive: true, force: true });
  });

  it("cannot clone the private repository without a credential (the sandbox has no network)", async () => {
    const response = await alice.call<ErrorBody>("POST", `/v1/sandboxes/${sandbox}/projects`, {
      url: repoUrl,
    });
    expect(response.status).toBe(422);
    expect(response.body.error.code).toBe("clone_failed");
  });

  it("stores a git credential that is listed without its token", async () => {
    const put = await alice.call<Record<string, unknown>>("PUT", `/v1/git-credentials/${git.host}`, {
      token: TOKEN,
      forge: "github",
      apiUrl: `${forge.url}/github`,
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toMatchObject({ host: git.host, username: USERNAME, forge: "github" });
    const listed = await alice.call("GET", "/v1/git-credentials");
    expect(JSON.stringify(listed.body)).toContain(git.host);
    expect(JSON.stringify(listed.body)).not.toContain(TOKEN);
    // Provider credentials are listed apart: a git token is none of them.
    const providers = await alice.call<{ items: { provider: string }[] }>("GET", "/v1/credentials");
    expect(providers.body.items.map((c) => c.provider)).toEqual(["anthropic"]);
    const bad = await alice.call<ErrorBody>("PUT", "/v1/git-credentials/Not a host", { token: TOKEN });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
  });

  it("clones the private repository through the server's relay; origin names the real remote", async () => {
    const before = git.requests.length;
    const added = await alice.call<{ name: string; url: string; head: string }>(
      "POST",
      `/v1/sandboxes/${sandbox}/projects`,
      { url: repoUrl },
    );
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    expect(added.body).toMatchObject({ name: "app", url: repoUrl, head: bareGit("rev-parse", "main") });
    // Every request reached the git host with the token, added on the host's side.
    const made = git.requests.slice(before);
    expect(made.length).toBeGreaterThan(0);
    expect(made.every((r) => r.authorized)).toBe(true);
  });

  it("keeps a single run's change: a commit on a branch, the project fast-forwarded, its tree clean", async () => {
    const base = (await sh("git -C projects/app rev-parse HEAD")).trim();
    const run = await runCommand("printf 'kept\\n' > added.txt && printf 'line one\\nline 2\\n' > README");
    const kept = await alice.call<Keep>("POST", `/v1/runs/${run.id}/keep`, { message: "Add added.txt" });
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
    expect(kept.body).toMatchObject({
      runId: run.id,
      branch: `polydev/${run.id.slice(4, 12)}`,
      merged: true,
      pushed: false,
      pullRequestUrl: null,
      otherKeptRuns: [],
    });
    const head = (await sh("git -C projects/app rev-parse HEAD")).trim();
    expect(head).toBe(kept.body.commit);
    expect((await sh(`git -C projects/app rev-parse ${kept.body.branch}`)).trim()).toBe(head);
    expect((await sh("git -C projects/app rev-parse HEAD^")).trim()).toBe(base);
    expect(await sh("git -C projects/app log -1 --format=%s")).toBe("Add added.txt\n");
    expect(await sh("git -C projects/app status --porcelain")).toBe("");
    expect(await sh("cat projects/app/added.txt")).toBe("kept\n");
    // The keep is recorded and shown beside the changes.
    const changes = await alice.call<{ keep: Omit<Keep, "otherKeptRuns"> | null }>(
      "GET",
      `/v1/runs/${run.id}/changes`,
    );
    expect(changes.body.keep).toMatchObject({ branch: kept.body.branch, commit: head, merged: true });
    // Keeping it again finds the same branch and commit: nothing new is made.
    const again = await alice.call<Keep>("POST", `/v1/runs/${run.id}/keep`, { message: "Add added.txt" });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.commit).toBe(head);
  });

  it("pushes the branch through the relay and opens a pull request on the forge; the sandbox never sees the token", async () => {
    // A pre-push hook is sandbox-controlled code that runs while the relay is open: it looks
    // for the token everywhere it can, and tries the relay for another repository.
    await sh(`cat > projects/app/.git/hooks/pre-push <<'EOF'
#!/bin/sh
out="$HOME/probe"; mkdir -p "$out"
relay="$2"
printf '%s\\n' "$relay" > "$out/relay-url"
env > "$out/env"
cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' > "$out/all-environ"
cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' ' > "$out/all-cmdline"
GIT_CURL_VERBOSE=1 GIT_TRACE_CURL=1 git ls-remote "$relay" > "$out/ls-remote" 2>&1; echo "exit $?" >> "$out/ls-remote"
other=$(printf '%s' "$relay" | sed 's#/app.git$#/secret.git#')
git ls-remote "$other" > "$out/other-repo" 2>&1; echo "exit $?" >> "$out/other-repo"
exit 0
EOF
chmod +x projects/app/.git/hooks/pre-push`);
    const run = await runCommand("printf 'pushed\\n' > pushed.txt");
    const kept = await alice.call<Keep>("POST", `/v1/runs/${run.id}/keep`, {
      branch: "feature/pushed",
      push: true,
      pullRequest: { title: "Add pushed.txt", body: "from a test" },
    });
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
    expect(kept.body).toMatchObject({ branch: "feature/pushed", merged: true, pushed: true });
    // The branch reached the bare repository with the kept commit.
    expect(bareGit("rev-parse", "refs/heads/feature/pushed")).toBe(kept.body.commit);
    // The forge got one authorized pull request from that branch into the project's branch.
    expect(forge.calls).toEqual([
      {
        forge: "github",
        method: "POST",
        path: "/github/repos/org/app/pulls",
        repo: "org/app",
        body: { title: "Add pushed.txt", body: "from a test", head: "feature/pushed", base: "main" },
        authorized: true,
      },
    ]);
    expect(kept.body.pullRequestUrl).toBe("https://github.example/org/app/pull/1");

    // Escape probe: what the hook saw holds neither the token nor its Basic form.
    const basic = Buffer.from(`${USERNAME}:${TOKEN}`).toString("base64");
    const relayUrl = (await sh("cat probe/relay-url")).trim();
    expect(relayUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/org\/app\.git$/);
    const seen = await sh("cat probe/env probe/all-environ probe/all-cmdline probe/ls-remote");
    expect(seen).not.toContain(TOKEN);
    expect(seen).not.toContain(basic);
    // The relay served the hook's own fetch of this repository (that is its job), without a header it could see…
    expect(await sh("cat probe/ls-remote")).toContain("refs/heads/main");
    // …and refused another repository on the same host.
    const other = await sh("cat probe/other-repo");
    expect(other).toContain("exit 128");
    expect(other).toMatch(/403|relays only/);
    expect(git.requests.some((r) => r.url.startsWith("/org/secret.git"))).toBe(false);
    // Nothing in the sandbox's files holds it either; and the relay is gone after the push.
    const grep = await alice.exec(sandbox, [
      "/bin/sh",
      "-c",
      'grep -rlsF -e "$1" -e "$2" . ; echo "exit $?"',
      "sh",
      TOKEN,
      basic,
    ]);
    expect((grep.body as { stdout: string }).stdout.trim()).toBe("exit 1");
    const after = await alice.exec(sandbox, ["git", "ls-remote", relayUrl]);
    expect((after.body as { exitCode: number }).exitCode).not.toBe(0);
    await sh("rm -f projects/app/.git/hooks/pre-push && rm -rf probe");
    // Nor does the server's database (sealed by the vault) or its log.
    const checked: string[] = [];
    for (const name of await readdir(t.dataDir)) {
      if (!/\.db(-wal)?$|\.log$/.test(name)) continue;
      checked.push(name);
      const bytes = await readFile(join(t.dataDir, name));
      expect(bytes.includes(TOKEN), name).toBe(false);
      expect(bytes.includes(basic), name).toBe(false);
    }
    expect(checked).toEqual(expect.arrayContaining(["polydev.db", "test-server.log"]));
  });

  it("reports a merge conflict with its paths, keeps the branch and leaves the project clean", async () => {
    const run = await runCommand("printf 'line one by the agent\\nline two\\n' > README");
    // Meanwhile the project moved on: its own commit changes the same line.
    await sh(
      "cd projects/app && git checkout -q -- . && git clean -qfd && printf 'line one by a human\\nline two\\n' > README && git -c user.name=H -c user.email=h@h commit -qam human",
    );
    const headBefore = (await sh("git -C projects/app rev-parse HEAD")).trim();
    const kept = await alice.call<ErrorBody>("POST", `/v1/runs/${run.id}/keep`, { branch: "agent-readme" });
    expect(kept.status, JSON.stringify(kept.body)).toBe(409);
    expect(kept.body.error.code).toBe("merge_conflict");
    expect(kept.body.error.details?.paths).toEqual(["README"]);
    expect(kept.body.error.details?.branch).toBe("agent-readme");
    // The project is as it was; the branch holds the run's change.
    expect((await sh("git -C projects/app rev-parse HEAD")).trim()).toBe(headBefore);
    expect(await sh("git -C projects/app status --porcelain")).toBe("");
    expect(await sh("git -C projects/app show agent-readme:README")).toBe(
      "line one by the agent\nline two\n",
    );
    const recorded = await alice.call<Keep>("GET", `/v1/runs/${run.id}/keep`);
    expect(recorded.body).toMatchObject({ branch: "agent-readme", merged: false, pushed: false });
  });

  it("merges a change based on an older commit when it does not conflict", async () => {
    const run = await runCommand("printf 'y\\n' > other.txt");
    await sh(
      "cd projects/app && git checkout -q -- . && git clean -qfd && printf 'more\\n' > human.txt && git add human.txt && git -c user.name=H -c user.email=h@h commit -qm human2",
    );
    const kept = await alice.call<Keep>("POST", `/v1/runs/${run.id}/keep`, {});
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
    expect(kept.body.merged).toBe(true);
    expect(await sh("git -C projects/app log -1 --format=%P")).toMatch(/^[0-9a-f]{40} [0-9a-f]{40}\n$/);
    expect(await sh("cat projects/app/other.txt projects/app/human.txt")).toBe("y\nmore\n");
    expect(await sh("git -C projects/app status --porcelain")).toBe("");
  });

  it("answers bad input with clear 4xx codes", { timeout: 180_000 }, async () => {
    const run = await runCommand("printf 'z\\n' > z.txt");
    for (const branch of ["bad..name", "-x", "a b", "x.lock", "end/", "@{u}"]) {
      const response = await alice.call<ErrorBody>("POST", `/v1/runs/${run.id}/keep`, { branch });
      expect(response.status, branch).toBe(400);
      expect(response.body.error.code).toBe("invalid_request");
    }
    const prWithoutPush = await alice.call<ErrorBody>("POST", `/v1/runs/${run.id}/keep`, {
      pullRequest: { title: "x" },
    });
    expect(prWithoutPush.status).toBe(400);
    // A run that changed nothing, and one without a project.
    await sh("cd projects/app && git checkout -q -- . && git clean -qfd");
    const unchanged = await runCommand("true");
    const nothing = await alice.call<ErrorBody>("POST", `/v1/runs/${unchanged.id}/keep`, {});
    expect(nothing.status).toBe(422);
    expect(nothing.body.error.code).toBe("nothing_to_keep");
    fake.setScript([{ text: "Hello." }]);
    const plain = await alice.call<Run>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "hi",
      sandboxId: sandbox,
    });
    await waitForEnd(plain.body.id);
    fake.setScript(undefined);
    const noProject = await alice.call<ErrorBody>("POST", `/v1/runs/${plain.body.id}/keep`, {});
    expect(noProject.status).toBe(422);
    expect(noProject.body.error.code).toBe("nothing_to_keep");
    // A run still going.
    // Short: a cancel does not stop the built-in agent's tool command already running (it ends on its own).
    fake.setScript([{ toolCall: { tool: "run_command", arguments: { command: "sleep 3" } } }, { text: "." }]);
    const busy = await alice.call<Run>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "wait",
      sandboxId: sandbox,
      project: "projects/app",
    });
    const early = await alice.call<ErrorBody>("POST", `/v1/runs/${busy.body.id}/keep`, {});
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe("run_not_finished");
    await alice.call("POST", `/v1/runs/${busy.body.id}/cancel`);
    await waitForEnd(busy.body.id);
    fake.setScript(undefined);
    // Another user's run is not found.
    const bob = await createUser(t.api, "bob");
    const foreign = await bob.call<ErrorBody>("POST", `/v1/runs/${run.id}/keep`, {});
    expect(foreign.status).toBe(404);
    const unknown = await alice.call<ErrorBody>("POST", "/v1/runs/run_nonexistent/keep", {});
    expect(unknown.status).toBe(404);
  });
});
