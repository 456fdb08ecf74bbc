/**
 * Cloning a project runs `git clone` inside the sandbox, over the sandbox's own egress: a real
 * `git daemon` serves a bare repository from a network namespace this test creates (never an
 * outside address), and a sandbox without a network cannot clone from it.
 */
import type { ChildProcess } from "node:child_process";
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestNetwork } from "@polydev/core/testing";
import { startTestNetwork, testNetworkUnavailable } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { startTestServer } from "./testing/harness.js";

const unavailable = testNetworkUnavailable();
const GIT_PORT = 9418;

/** Resolves once something accepts TCP connections at address:port. */
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
  `cloning projects inside the sandbox${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let net: TestNetwork;
    let t: TestServer;
    let daemon: ChildProcess | undefined;
    let repos: string;
    let tagCommit: string;

    beforeAll(async () => {
      net = await startTestNetwork({ zone: {} });
      repos = await mkdtemp(join(tmpdir(), "polydev-git-"));
      const work = join(repos, "work");
      const git = (...args: string[]) =>
        execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@t", ...args], { cwd: work }).toString();
      execFileSync("git", ["init", "-q", "-b", "main", work]);
      execFileSync("sh", ["-c", "echo v1 > file.txt"], { cwd: work });
      git("add", "-A");
      git("commit", "-qm", "v1");
      git("tag", "v1");
      tagCommit = git("rev-parse", "HEAD").trim();
      execFileSync("sh", ["-c", "echo v2 > file.txt"], { cwd: work });
      git("commit", "-qam", "v2");
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
          "--reuseaddr",
          repos,
        ],
        { stdio: "ignore", detached: true },
      );
      await waitForPort(net.serverAddress, GIT_PORT);
      t = await startTestServer();
    }, 120_000);
    afterAll(async () => {
      // The daemon forks a child per connection: its whole process group goes.
      if (daemon?.pid !== undefined) {
        try {
          process.kill(-daemon.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await t?.close();
      await net?.close();
      if (repos) await rm(repos, { recursive: true, force: true });
    });

    it("clones a repository at a ref over the sandbox's egress and lists it with its origin", async () => {
      const sandbox = await t.api.createSandbox({ network: "egress" });
      const url = `git://${net.serverAddress}:${GIT_PORT}/app.git`;
      const added = await t.api.call<{ name: string; head: string; url: string; error?: unknown }>(
        "POST",
        `/v1/sandboxes/${sandbox}/projects`,
        { url, ref: "v1", check: 'test "$(cat file.txt)" = v1' },
      );
      expect(added.status, JSON.stringify(added.body)).toBe(201);
      expect(added.body).toMatchObject({ name: "app", url, head: tagCommit });
      const file = await t.api.call(
        "GET",
        `/v1/sandboxes/${sandbox}/files/content?path=projects/app/file.txt`,
      );
      expect(String(file.body)).toBe("v1\n");
      const listed = await t.api.call<{ items: { name: string; url: string }[] }>(
        "GET",
        `/v1/sandboxes/${sandbox}/projects`,
      );
      expect(listed.body.items).toEqual([
        expect.objectContaining({ name: "app", url, check: 'test "$(cat file.txt)" = v1' }),
      ]);
      const missingRef = await t.api.call<{ error: { code: string } }>(
        "POST",
        `/v1/sandboxes/${sandbox}/projects`,
        {
          url,
          ref: "no-such-ref",
          name: "other",
        },
      );
      expect(missingRef.status).toBe(422);
      expect(missingRef.body.error.code).toBe("clone_failed");
      // The failed clone left nothing behind.
      const after = await t.api.call<{ items: unknown[] }>("GET", `/v1/sandboxes/${sandbox}/projects`);
      expect(after.body.items).toHaveLength(1);
    });

    it("cannot clone where the sandbox has no network: the clone is the sandbox's, not the host's", async () => {
      const sandbox = await t.api.createSandbox({ network: "none" });
      const response = await t.api.call<{ error: { code: string } }>(
        "POST",
        `/v1/sandboxes/${sandbox}/projects`,
        {
          url: `git://${net.serverAddress}:${GIT_PORT}/app.git`,
        },
      );
      expect(response.status).toBe(422);
      expect(response.body.error.code).toBe("clone_failed");
    });
  },
);
