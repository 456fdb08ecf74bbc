/**
 * From prompt to merged change, the whole path in one go, as issue 12 describes it: a private
 * repository served by the real `git http-backend` on loopback is cloned into a sandbox with no
 * network (the token from the vault, added by the server's relay); the real claude, codex and
 * gemini CLIs each change it in their own copy against the fake providers; each one's diff and
 * check are recorded; a signed webhook says the group finished; the winner is kept, pushed and
 * proposed as a pull request on the fake forge; a follow-up continues the winner's session.
 */
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FakeForge, FakeProviders, FakeRequestView } from "@polydev/fake-providers";
import { startFakeForge, startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHttpServer } from "./testing/git-http-server.js";
import { startGitHttpServer } from "./testing/git-http-server.js";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

const installed = ["claude", "codex", "gemini"].every((cli) => existsSync(`/usr/local/bin/${cli}`));
const TOKEN = "glpat_private_token_for_e2e_0123456789";
const AGENTS = ["claude", "codex", "gemini"] as const;
/** Passes only in the copy whose README the gemini CLI rewrote. */
const CHECK = "grep -q gemini README";

interface Run {
  id: string;
  agent: string;
  state: string;
  exitReason: string | null;
  finalText: string | null;
  groupId: string | null;
}
interface Changes {
  baseCommit: string | null;
  files: { path: string; status: string }[];
  diff: string;
  check: { command: string; exitCode: number | null; output: string } | null;
}
interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

let fake: FakeProviders;
let forge: FakeForge;
let git: GitHttpServer;
let hooks: Server;
let t: TestServer;
let alice: ApiClient;
let sandbox: string;
let repos: string;
const received: Received[] = [];

function bareGit(...args: string[]): string {
  return execFileSync("git", ["--git-dir", join(repos, "team", "site.git"), ...args])
    .toString()
    .trim();
}

async function waitForEnd(id: string): Promise<Run> {
  const deadline = Date.now() + 240_000;
  for (;;) {
    const run = (await alice.call<Run>("GET", `/v1/runs/${id}`)).body;
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.state)) return run;
    if (Date.now() > deadline) throw new Error(`run ${id} still ${run.state}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** One shell call per CLI, made on its first request that offers tools (its own shell tool). */
function editReadme(agent: string) {
  return (view: FakeRequestView) =>
    view.lastIsToolResult || view.toolNames.length === 0 || view.earlierPrompts.length > 0
      ? undefined
      : { toolCall: { command: `printf '${agent} was here\\n' > README` } };
}

/** The check a receiver runs (docs/webhooks.md). */
function signatureHolds(secret: string, header: string, body: string): boolean {
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=", 2) as [string, string]));
  return parts.v1 === createHmac("sha256", secret).update(`${parts.t}.${body}`).digest("hex");
}

describe.skipIf(!installed)(
  `prompt to merged change with the real CLIs${installed ? "" : " (skipped: the agent CLIs are not installed; scripts/ensure.sh installs them)"}`,
  () => {
    beforeAll(async () => {
      fake = await startFakeProviders();
      forge = await startFakeForge({ token: TOKEN });
      repos = await mkdtemp(join(tmpdir(), "polydev-e2e-git-"));
      const work = join(repos, "work");
      execFileSync("git", ["init", "-q", "-b", "main", work]);
      execFileSync("sh", ["-c", "printf 'hello\\n' > README"], { cwd: work });
      execFileSync("git", ["add", "README"], { cwd: work });
      execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@t", "commit", "-qm", "first"], {
        cwd: work,
      });
      execFileSync("git", ["clone", "-q", "--bare", work, join(repos, "team", "site.git")]);
      git = await startGitHttpServer({ root: repos, username: "oauth2", token: TOKEN });
      hooks = createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on("data", (c: Buffer) => chunks.push(c));
        request.on("end", () => {
          received.push({ headers: request.headers, body: Buffer.concat(chunks).toString() });
          response.statusCode = 204;
          response.end();
        });
      });
      await new Promise<void>((resolve) => hooks.listen(0, "127.0.0.1", resolve));
      t = await startTestServer({
        upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
        gitInsecureHosts: [git.host, new URL(forge.url).host],
        webhooks: { allowPrivate: true, retryBaseMs: 300, pollIntervalMs: 100, maxAttempts: 4 },
      });
      alice = await createUser(t.api, "alice");
      for (const provider of ["anthropic", "openai", "gemini"])
        await alice.call("PUT", `/v1/credentials/${provider}`, { apiKey: "sk-real-provider-key-123456" });
      sandbox = await alice.createSandbox({ network: "none" });
    }, 180_000);
    afterAll(async () => {
      await t?.close();
      await git?.close();
      await forge?.close();
      await fake?.close();
      if (hooks) await new Promise<void>((resolve) => hooks.close(() => resolve()));
      if (repos) await rm(repos, { recursive: true, force: true });
    });

    it("clones, runs three CLIs side by side, records each change and check, keeps, pushes, proposes and follows up", async () => {
      // The token is stored once, as a GitLab credential whose API is the fake forge.
      const stored = await alice.call("PUT", `/v1/git-credentials/${git.host}`, {
        token: TOKEN,
        forge: "gitlab",
        apiUrl: `${forge.url}/gitlab/api/v4`,
      });
      expect(stored.status, JSON.stringify(stored.body)).toBe(200);
      const repoUrl = `${git.url}/team/site.git`;
      const cloned = await alice.call<{ path: string; head: string }>(
        "POST",
        `/v1/sandboxes/${sandbox}/projects`,
        {
          url: repoUrl,
          check: CHECK,
        },
      );
      expect(cloned.status, JSON.stringify(cloned.body)).toBe(201);
      const base = bareGit("rev-parse", "main");
      expect(cloned.body.head).toBe(base);

      const hook = await alice.call<{ id: string; secret: string }>("POST", "/v1/webhooks", {
        url: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`,
        events: ["group.finished", "group.failed"],
      });
      expect(hook.status).toBe(201);

      fake.setScript({
        anthropic: editReadme("claude"),
        openai: editReadme("codex"),
        gemini: editReadme("gemini"),
      });
      // No `project` named: a group defaults to the sandbox's only project, never an empty folder.
      const group = await alice.call<{ groupId: string; runs: Run[] }>("POST", "/v1/runs", {
        agents: [...AGENTS],
        prompt: "Rewrite the README",
        sandboxId: sandbox,
      });
      expect(group.status, JSON.stringify(group.body)).toBe(201);
      const runs = await Promise.all(group.body.runs.map((run) => waitForEnd(run.id)));
      fake.setScript(undefined);
      for (const run of runs) expect(run.state, `${run.agent}: ${run.exitReason}`).toBe("succeeded");

      // Each agent's change against the clone's commit, and the check run in its own copy.
      const byAgent = new Map<string, { run: Run; changes: Changes }>();
      for (const run of runs) {
        const changes = await alice.call<Changes>("GET", `/v1/runs/${run.id}/changes`);
        expect(changes.status).toBe(200);
        byAgent.set(run.agent, { run, changes: changes.body });
      }
      for (const agent of AGENTS) {
        const { changes } = byAgent.get(agent) ?? { changes: undefined };
        expect(changes?.baseCommit).toBe(base);
        expect(changes?.files).toEqual([{ path: "README", status: "M" }]);
        expect(changes?.diff).toContain(`+${agent} was here`);
        expect(changes?.check?.exitCode).toBe(agent === "gemini" ? 0 : 1);
      }

      // The group's end reached the receiver, signed with the secret answered at creation.
      const deadline = Date.now() + 30_000;
      while (!received.some((r) => r.body.includes("group.finished")) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 100));
      const finished = received.find((r) => r.body.includes("group.finished"));
      expect(finished, "no group.finished delivery").toBeDefined();
      expect(JSON.parse(finished?.body ?? "{}")).toMatchObject({
        type: "group.finished",
        data: { groupId: group.body.groupId },
      });
      expect(
        signatureHolds(
          hook.body.secret,
          String(finished?.headers["polydev-signature"]),
          finished?.body ?? "",
        ),
      ).toBe(true);

      // The winner is kept in the original project, pushed, and proposed on the forge.
      const winner = byAgent.get("gemini")?.run;
      if (!winner) throw new Error("no gemini run");
      const kept = await alice.call<{
        branch: string;
        commit: string;
        merged: boolean;
        pushed: boolean;
        pullRequestUrl: string | null;
      }>("POST", `/v1/runs/${winner.id}/keep`, {
        branch: "polydev/gemini-readme",
        push: true,
        pullRequest: { title: "README by gemini" },
      });
      expect(kept.status, JSON.stringify(kept.body)).toBe(200);
      expect(kept.body).toMatchObject({ branch: "polydev/gemini-readme", merged: true, pushed: true });
      expect(bareGit("rev-parse", "refs/heads/polydev/gemini-readme")).toBe(kept.body.commit);
      expect(bareGit("show", `${kept.body.commit}:README`)).toBe("gemini was here");
      expect(forge.calls).toHaveLength(1);
      expect(forge.calls[0]).toMatchObject({ forge: "gitlab", method: "POST", authorized: true });
      expect(forge.calls[0]?.body).toMatchObject({
        title: "README by gemini",
        source_branch: "polydev/gemini-readme",
        target_branch: "main",
      });
      expect(kept.body.pullRequestUrl).toMatch(/^https?:\/\//);
      const project = await alice.exec(sandbox, [
        "/bin/sh",
        "-c",
        "cd projects/site && cat README && git status --porcelain",
      ]);
      expect(project.body).toMatchObject({ exitCode: 0, stdout: "gemini was here\n" });

      // A follow-up continues the winner's own gemini session.
      const followUp = await alice.call<{ turn: number }>("POST", `/v1/runs/${winner.id}/messages`, {
        prompt: "Now say what you changed",
      });
      expect(followUp.status, JSON.stringify(followUp.body)).toBe(202);
      expect(followUp.body.turn).toBe(2);
      const after = await waitForEnd(winner.id);
      expect(after.state, after.exitReason ?? "").toBe("succeeded");
      expect(after.finalText).toContain('you asked "Now say what you changed"');
      expect(after.finalText).toContain('after you first asked "Rewrite the README"');
    }, 600_000);
  },
);
