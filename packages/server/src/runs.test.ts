/**
 * The real claude, codex and gemini CLIs run inside a real sandbox, reach the fake providers only
 * through the gateway, and their output arrives as normalized, resumable events.
 */
import { existsSync } from "node:fs";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, readSse, startTestServer } from "./testing/harness.js";

const installed = ["claude", "codex", "gemini"].every((cli) => existsSync(`/usr/local/bin/${cli}`));
const REAL_KEY = "sk-real-provider-key-123456";

let fake: FakeProviders;
let t: TestServer;
let alice: ApiClient;
let sandbox: string;

interface Run {
  id: string;
  state: string;
  finalText: string | null;
  exitReason: string | null;
  cwd: string;
  sandboxId: string;
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

async function events(id: string, lastEventId?: string) {
  const response = await fetch(`${t.url}/v1/runs/${id}/events`, {
    headers: {
      authorization: `Bearer ${alice.key}`,
      ...(lastEventId ? { "last-event-id": lastEventId } : {}),
    },
  });
  return readSse(response);
}

describe.skipIf(!installed)(
  "runs with the real CLIs (skipped when scripts/ensure.sh could not install them as root)",
  () => {
    beforeAll(async () => {
      fake = await startFakeProviders();
      t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
      alice = await createUser(t.api, "alice");
      for (const provider of ["anthropic", "openai", "gemini"]) {
        await alice.call("PUT", `/v1/credentials/${provider}`, { apiKey: REAL_KEY });
      }
      sandbox = await alice.createSandbox();
    });
    afterAll(async () => {
      await t?.close();
      await fake?.close();
    });

    it.each(["claude", "codex", "gemini"])(
      "%s answers a text turn through the gateway with the owner's key",
      async (agent) => {
        fake.requests.length = 0;
        const started = await alice.call<Run>("POST", "/v1/runs", {
          agent,
          prompt: "say hello",
          sandboxId: sandbox,
        });
        expect(started.status).toBe(201);
        const run = await waitForEnd(started.body.id);
        expect(run.state, run.exitReason ?? "").toBe("succeeded");
        expect(run.finalText).toContain("Hello from the fake");
        const stream = await events(run.id);
        expect(stream.map((e) => e.event)).toEqual(
          expect.arrayContaining(["status", "text", "usage", "done"]),
        );
        expect(stream.at(-1)?.event).toBe("done");
        const keys = fake.requests.map((r) => JSON.stringify(r.headers));
        expect(keys.some((h) => h.includes(REAL_KEY))).toBe(true);
        expect(keys.some((h) => h.includes("pdg_"))).toBe(false);
      },
    );

    it.each(["claude", "codex", "gemini"])(
      "%s makes a tool call that creates a file in the sandbox",
      async (agent) => {
        const name = `made-by-${agent}.txt`;
        const started = await alice.call<Run>("POST", "/v1/runs", {
          agent,
          prompt: `create file ${name}`,
          sandboxId: sandbox,
        });
        const run = await waitForEnd(started.body.id);
        expect(run.state, run.exitReason ?? "").toBe("succeeded");
        const stream = await events(run.id);
        expect(stream.some((e) => e.event === "tool_call")).toBe(true);
        expect(stream.some((e) => e.event === "tool_result")).toBe(true);
        const file = await alice.call("GET", `/v1/sandboxes/${sandbox}/files/content?path=${name}`);
        expect(String(file.body)).toContain("hello from polydev");
      },
    );

    it("resumes an event stream after Last-Event-ID with exactly the missed events", async () => {
      const started = await alice.call<Run>("POST", "/v1/runs", {
        agent: "claude",
        prompt: "say hello",
        sandboxId: sandbox,
      });
      await waitForEnd(started.body.id);
      const all = await events(started.body.id);
      const cut = all[2];
      if (!cut?.id) throw new Error("too few events");
      const rest = await events(started.body.id, cut.id);
      expect(rest.map((e) => e.id)).toEqual(all.slice(3).map((e) => e.id));
    });

    it('runs three agents side by side, each in its own fork (drivers with "fork") or working copy', async () => {
      const { features } = await t.server.driver.probe();
      await alice.exec(sandbox, "echo from-the-source > seed.txt");
      const started = await alice.call<{ groupId: string; runs: Run[] }>("POST", "/v1/runs", {
        agents: ["claude", "codex", "gemini"],
        prompt: "create file group.txt",
        sandboxId: sandbox,
      });
      expect(started.status).toBe(201);
      expect(started.body.runs).toHaveLength(3);
      // Where each agent works: its own sandbox (a fork that starts with the source's files), or
      // its own directory of the one sandbox.
      const places = new Set(started.body.runs.map((r) => `${r.sandboxId}:${r.cwd}`));
      expect(places.size).toBe(3);
      const forked = features.includes("fork");
      for (const run of started.body.runs) {
        expect(run.sandboxId === sandbox).toBe(!forked);
        const done = await waitForEnd(run.id);
        expect(done.state, `${run.id}: ${done.exitReason}`).toBe("succeeded");
        const file = await alice.call(
          "GET",
          `/v1/sandboxes/${run.sandboxId}/files/stat?path=${run.cwd}/group.txt`,
        );
        expect(file.status).toBe(200);
        if (forked) {
          expect((await alice.exec(run.sandboxId, "cat seed.txt")).body.stdout).toBe("from-the-source\n");
          await alice.call("DELETE", `/v1/sandboxes/${run.sandboxId}`);
        }
      }
      // No agent wrote into the source when each had a fork.
      if (forked) {
        expect(
          (await alice.exec(sandbox, "test -e group.txt && echo there || echo absent")).body.stdout,
        ).toBe("absent\n");
      }
    });

    it("cancels a run mid-way and leaves no process behind; a timeout ends as timed_out", async () => {
      fake.setScript([{ text: "slow words for a while", delayMs: 1500 }]);
      const started = await alice.call<Run>("POST", "/v1/runs", {
        agent: "claude",
        prompt: "talk slowly",
        sandboxId: sandbox,
      });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const cancelled = await alice.call<Run>("POST", `/v1/runs/${started.body.id}/cancel`);
      expect(cancelled.body.state).toBe("cancelled");
      // Killed processes may linger as zombies for a moment until the sandbox's init reaps them.
      await expect
        .poll(async () =>
          (
            await alice.exec(
              sandbox,
              "ps -eo stat=,comm= | grep -v '^Z' | grep -c -E ' (claude|node)$' || true",
            )
          ).body.stdout.trim(),
        )
        .toBe("0");

      fake.setScript([{ text: "even slower words here", delayMs: 3000 }]);
      const slow = await alice.call<Run>("POST", "/v1/runs", {
        agent: "claude",
        prompt: "talk slowly",
        sandboxId: sandbox,
        timeoutMs: 2000,
      });
      const ended = await waitForEnd(slow.body.id);
      expect(ended.state).toBe("timed_out");
      fake.setScript(undefined);
    });

    it("cancels a built-in run during a tool's command and kills that command", async () => {
      fake.setScript([
        {
          toolCall: {
            tool: "run_command",
            arguments: { command: "sleep 300; echo late > cancelled-late.txt" },
          },
        },
        { text: "done" },
      ]);
      const started = await alice.call<Run>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "wait a long time",
        sandboxId: sandbox,
      });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      const sleeping = async () =>
        (
          await alice.exec(sandbox, "ps -eo stat=,args= | grep -v '^Z' | grep -c '[s]leep 300$' || true")
        ).body.stdout.trim();
      await expect.poll(sleeping, { timeout: 30_000 }).toBe("1");
      const cancelled = await alice.call<Run>("POST", `/v1/runs/${started.body.id}/cancel`);
      expect(cancelled.body.state).toBe("cancelled");
      await expect.poll(sleeping, { timeout: 15_000 }).toBe("0");
      fake.setScript(undefined);
    });

    it.each([
      ["anthropic", undefined],
      ["openai", "gpt-test"],
      ["gemini", "gemini-2.5-flash"],
    ])(
      "the built-in agent (%s) writes a file through its tools and streams the same events",
      async (provider, model) => {
        const name = `builtin-${provider}.txt`;
        fake.setScript([
          { toolCall: { tool: "write_file", arguments: { path: name, content: `written by ${provider}` } } },
          { text: "All done." },
        ]);
        const started = await alice.call<Run>("POST", "/v1/runs", {
          agent: "builtin",
          prompt: `write ${name}`,
          sandboxId: sandbox,
          ...(model ? { model } : {}),
        });
        const run = await waitForEnd(started.body.id);
        fake.setScript(undefined);
        expect(run.state, run.exitReason ?? "").toBe("succeeded");
        expect(run.finalText).toBe("All done.");
        const stream = await events(run.id);
        expect(stream.map((e) => e.event)).toEqual(
          expect.arrayContaining(["tool_call", "tool_result", "text", "usage", "done"]),
        );
        const file = await alice.call("GET", `/v1/sandboxes/${sandbox}/files/content?path=${name}`);
        expect(String(file.body)).toBe(`written by ${provider}`);
        expect(fake.requests.at(-1)?.provider).toBe(provider);
      },
    );

    it("rejects bad run requests with 400", async () => {
      for (const body of [
        { agent: "cursor", prompt: "x" },
        { agent: "claude", agents: ["codex"], prompt: "x" },
        { agent: "claude", prompt: "" },
        { agent: "claude", prompt: "x", timeoutMs: 5 },
      ]) {
        const response = await alice.call("POST", "/v1/runs", body);
        expect(response.status, JSON.stringify(body)).toBe(400);
      }
      expect((await alice.call("GET", "/v1/runs/run_nope")).status).toBe(404);
    });
  },
);
