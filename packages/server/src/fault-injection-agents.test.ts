/**
 * Fault injection for the operations that drive agents (see fault-injection.test.ts for the
 * method): runs (the built-in agent, and the Claude CLI when installed), provider logins (the
 * stand-in CLIs of testing/stand-in-logins.ts), and the provider gateway used from inside a
 * sandbox. Each has its sandbox destroyed, its init killed, its TTL run out or its agent
 * connection closed while the operation is in the middle of its work.
 */
import { existsSync } from "node:fs";
import type { FakeProviders, FakeRequestView, FakeTurn } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildServer } from "./testing/child-server.js";
import { removeDataDir, startChildServer, until } from "./testing/child-server.js";
import type { Fault } from "./testing/fault-clients.js";
import {
  assertCleanAfter,
  createWithFootprint,
  FAULTS,
  inject,
  StreamReader,
  uniqueSleep,
  waitForSandboxProcess,
} from "./testing/fault-clients.js";

const claudeInstalled = existsSync("/usr/local/bin/claude");
const FINAL = ["succeeded", "failed", "cancelled", "timed_out"];

let fake: FakeProviders;
let server: ChildServer;

/**
 * A prompt `fault-sleep <n>` makes the model run `sleep <n>` with whatever shell tool the agent
 * offers, so the run is busy inside its sandbox when the fault lands; `fault-stream` answers with
 * a slow stream of words, so a gateway request is in flight.
 */
function faultScript(view: FakeRequestView): FakeTurn | undefined {
  const sleep = /fault-sleep (\S+)/.exec(view.prompt)?.[1];
  if (sleep && !view.lastIsToolResult) {
    const command = `sleep ${sleep}`;
    return view.toolNames.includes("run_command")
      ? { toolCall: { tool: "run_command", arguments: { command } } }
      : { toolCall: { command } };
  }
  if (sleep) return { text: "done" };
  if (view.prompt.includes("fault-stream")) {
    return { text: Array.from({ length: 200 }, (_, i) => `word${i}`).join(" "), delayMs: 200 };
  }
  return undefined;
}

beforeAll(async () => {
  fake = await startFakeProviders({ script: faultScript });
  server = await startChildServer({
    config: {
      reconcileIntervalMs: 100,
      upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
    },
    standInLogins: true,
  });
  for (const provider of ["anthropic", "openai", "gemini"]) {
    const stored = await server.api.call("PUT", `/v1/credentials/${provider}`, {
      apiKey: "sk-fault-test-key-0001",
    });
    expect(stored.status, JSON.stringify(stored.body)).toBeLessThan(300);
  }
});
afterAll(async () => {
  const faults = server ? await server.unhandledFaults() : [];
  await server?.stop();
  if (server) await removeDataDir(server.dataDir);
  await fake?.close();
  expect(faults).toEqual([]);
});

async function noUnhandledFaults(): Promise<void> {
  expect(await server.unhandledFaults()).toEqual([]);
}

interface Run {
  id: string;
  state: string;
  exitReason: string | null;
}

async function runThroughFault(agent: string, fault: Fault): Promise<void> {
  const sandbox = await createWithFootprint(server);
  const sleep = uniqueSleep();
  const started = await server.api.call<Run>("POST", "/v1/runs", {
    agent,
    prompt: `fault-sleep ${sleep}`,
    sandboxId: sandbox.sandboxId,
  });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  const runId = started.body.id;
  const events = await StreamReader.open(server, `/v1/runs/${runId}/events`);
  await waitForSandboxProcess(sandbox, ["sleep", sleep], 60_000);
  await inject(server, fault, sandbox);
  const ended = await events.finish(30_000);
  expect(ended.how).toBe("end");
  expect(events.events.at(-1)?.event, JSON.stringify(events.events.slice(-3))).toBe("done");
  let run: Run | undefined;
  await until(
    async () => {
      run = (await server.api.call<Run>("GET", `/v1/runs/${runId}`)).body;
      return FINAL.includes(run.state);
    },
    20_000,
    `run ${runId} to end`,
  );
  // Its sandbox went away under it: the run cannot have done its work.
  expect(run?.state, run?.exitReason ?? "").toBe("failed");
  await assertCleanAfter(server, fault, sandbox);
  await noUnhandledFaults();
}

describe.concurrent("runs", () => {
  it.each(FAULTS)("a built-in agent run busy in a tool fails cleanly on %s", (fault: Fault) =>
    runThroughFault("builtin", fault),
  );

  it.skipIf(!claudeInstalled).each(FAULTS)(
    "a Claude CLI run busy in a tool fails cleanly on %s (skipped without the claude CLI that scripts/ensure.sh installs as root)",
    (fault: Fault) => runThroughFault("claude", fault),
    120_000,
  );
});

interface Login {
  id: string;
  state: string;
  reason: string | null;
}

// One login per provider and user at a time: these take their turns.
describe("logins", () => {
  it.each(FAULTS)("a login awaiting its code fails cleanly on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const started = await server.api.call<Login>("POST", "/v1/logins", {
      provider: "claude",
      sandboxId: sandbox.sandboxId,
    });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    expect(started.body.state).toBe("awaiting_user");
    const events = await StreamReader.open(server, `/v1/logins/${started.body.id}/events`);
    await events.waitFor(() => events.events.length > 0, "the login's first state event");
    await inject(server, fault, sandbox);
    const ended = await events.finish();
    expect(ended.how).toBe("end");
    expect(events.events.at(-1)).toMatchObject({ event: "state", data: { state: "failed" } });
    const after = await server.api.call<Login>("GET", `/v1/logins/${started.body.id}`);
    expect(after.body.state).toBe("failed");
    const late = await server.api.call("POST", `/v1/logins/${started.body.id}/code`, { code: "late-code" });
    expect(late.status).toBe(409);
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });
});

describe.concurrent("gateway", () => {
  it.each(FAULTS)("a streamed provider request through the gateway ends on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const opened = await server.api.call("POST", `/v1/sandboxes/${sandbox.sandboxId}/gateway`);
    expect(opened.status, JSON.stringify(opened.body)).toBe(200);
    const body = JSON.stringify({
      model: "claude-fake",
      max_tokens: 100,
      stream: true,
      messages: [{ role: "user", content: "fault-stream" }],
    });
    const stream = await StreamReader.open(server, `/v1/sandboxes/${sandbox.sandboxId}/exec`, {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json" },
      body: JSON.stringify({
        cmd: `curl -sS -N "$ANTHROPIC_BASE_URL/v1/messages" -H "x-api-key: $ANTHROPIC_API_KEY" -H 'content-type: application/json' -d '${body}'`,
      }),
    });
    await stream.waitFor(
      () => stream.events.some((e) => e.event === "stdout" && JSON.stringify(e.data).includes("word1")),
      "the first streamed words through the gateway",
    );
    await inject(server, fault, sandbox);
    await stream.finish();
    expect(["exit", "error"]).toContain(stream.events.at(-1)?.event);
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });
});
