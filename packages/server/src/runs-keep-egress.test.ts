/**
 * Pushing a kept branch where no git credential is stored: git pushes from INSIDE the sandbox,
 * over the sandbox's own egress, to a real `git daemon` (receive-pack on) in a network namespace
 * this test creates; the host is not involved.
 */
import type { ChildProcess } from "node:child_process";
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestNetwork } from "@polydev/core/testing";
import { startTestNetwork, testNetworkUnavailable } from "@polydev/core/testing";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

const unavailable = testNetworkUnavailable();
const GIT_PORT = 9418;

async function waitForPort(address: string, port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
      socket.connect(port, address);
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on ${address}:${port}`);
}

describe.skipIf(unavailable !== undefined)(
  `pushing a kept branch over the sandbox's egress${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let net: TestNetwork;
    let t: TestServer;
    let fake: FakeProviders;
    let alice: ApiClient;
    let daemon: ChildProcess | undefined;
    let repos: string;

    beforeAll(async () => {
      net = await startTestNetwork({ zone: {} });
      fake = await startFakeProviders();
      repos = await mkdtemp(join(tmpdir(), "polydev-keep-daemon-"));
      const work = join(repos, "work");
      execFileSync("git", ["init", "-q", "-b", "main", work]);
      execFileSync("sh", ["-c", "echo v1 > file.txt"], { cwd: work });
      execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@t", "add", "-A"], { cwd: work });
      execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@t", "commit", "-qm", "v1"], {
        cwd: work,
      });
      execFileSync("git", ["clone", "-q", "--bare", work, join(repos, "app.git")]);
      daemon = spawn(
        "ip",
        [
          "netns",
          "exec",
          net.namespace,
          "git",
          "daemon",
          `--listen=${net.serverAddress}`,
          `--port=${GIT_PORT}`,
          `--base-path=${repos}`,
          "--export-all",
          "--enable=receive-pack",
          "--reuseaddr",
          repos,
        ],
        { stdio: "ignore", detached: true },
      );
      await waitForPort(net.serverAddress, GIT_PORT);
      t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
      alice = await createUser(t.api, "alice");
      await alice.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
    }, 120_000);
    afterAll(async () => {
      if (daemon?.pid !== undefined) {
        try {
          process.kill(-daemon.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await t?.close();
      await fake?.close();
      await net?.close();
      if (repos) await rm(repos, { recursive: true, force: true });
    });

    it("clones, keeps a run's change and pushes its branch from inside the sandbox", async () => {
      const sandbox = await alice.createSandbox({ network: "egress" });
      const url = `git://${net.serverAddress}:${GIT_PORT}/app.git`;
      const added = await alice.call("POST", `/v1/sandboxes/${sandbox}/projects`, { url });
      expect(added.status, JSON.stringify(added.body)).toBe(201);
      fake.setScript([
        { toolCall: { tool: "run_command", arguments: { command: "echo v2 > file.txt" } } },
        { text: "Done." },
      ]);
      const started = await alice.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "bump the file",
        sandboxId: sandbox,
        project: "projects/app",
      });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      for (;;) {
        const run = (await alice.call<{ state: string }>("GET", `/v1/runs/${started.body.id}`)).body;
        if (!["queued", "running"].includes(run.state)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      fake.setScript(undefined);
      const kept = await alice.call<{ branch: string; commit: string; pushed: boolean }>(
        "POST",
        `/v1/runs/${started.body.id}/keep`,
        { branch: "bump", push: true },
      );
      expect(kept.status, JSON.stringify(kept.body)).toBe(200);
      expect(kept.body.pushed).toBe(true);
      const pushed = execFileSync("git", [
        "--git-dir",
        join(repos, "app.git"),
        "rev-parse",
        "refs/heads/bump",
      ])
        .toString()
        .trim();
      expect(pushed).toBe(kept.body.commit);
      // A pull request needs a credential for the remote's host: none is stored for a git:// remote.
      const pr = await alice.call<{ error: { code: string } }>("POST", `/v1/runs/${started.body.id}/keep`, {
        branch: "bump",
        push: true,
        pullRequest: { title: "Bump" },
      });
      expect(pr.status).toBe(422);
      expect(pr.body.error.code).toBe("credential_missing");
    });
  },
);
