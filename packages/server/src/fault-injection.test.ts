/**
 * Fault injection against a real server process with real sandboxes: every long operation
 * (exec, exec stream, terminal, file upload and download, background processes and their output)
 * has its sandbox destroyed, its init killed from the host, its TTL run out, or its agent
 * connection closed at a well-defined point in the middle. Each time the server must stay up,
 * answer 4xx or end the stream cleanly (never hang: every wait is bounded), leave nothing of the
 * sandbox on the host, and log nothing unhandled.
 * Runs, logins and the gateway are in fault-injection-agents.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildServer } from "./testing/child-server.js";
import { removeDataDir, startChildServer, within } from "./testing/child-server.js";
import type { Fault } from "./testing/fault-clients.js";
import {
  assertCleanAfter,
  createWithFootprint,
  FAULTS,
  inject,
  StreamReader,
  TerminalClient,
  Upload,
  uniqueSleep,
  waitForSandboxProcess,
} from "./testing/fault-clients.js";

let server: ChildServer;

beforeAll(async () => {
  // A fast reconciler, so an expired TTL or a dead init is acted on within a fraction of a second.
  server = await startChildServer({ config: { reconcileIntervalMs: 100 } });
});
afterAll(async () => {
  const faults = server ? await server.unhandledFaults() : [];
  if (process.env.POLYDEV_FAULT_LOG) console.log(faults.join("\n"));
  await server?.stop();
  if (server) await removeDataDir(server.dataDir);
  expect(faults).toEqual([]);
});

async function noUnhandledFaults(): Promise<void> {
  expect(await server.unhandledFaults()).toEqual([]);
}

const SSE = { accept: "text/event-stream", "content-type": "application/json" };

describe.concurrent("exec", () => {
  it.each(FAULTS)("buffered exec answers (4xx or the killed command) on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const sleep = uniqueSleep();
    const answer = server.api.exec(sandbox.sandboxId, ["sleep", sleep]);
    await waitForSandboxProcess(sandbox, ["sleep", sleep]);
    await inject(server, fault, sandbox);
    const response = await within(answer, 20_000, "the exec's answer");
    expect(response.status, JSON.stringify(response.body)).toBeLessThan(500);
    if (response.status === 200) expect(response.body.exitCode).not.toBe(0);
    else expect(response.body).toMatchObject({ error: { code: expect.any(String) } });
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });

  it.each(FAULTS)("an exec stream ends after its first output on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const sleep = uniqueSleep();
    const stream = await StreamReader.open(server, `/v1/sandboxes/${sandbox.sandboxId}/exec`, {
      method: "POST",
      headers: SSE,
      body: JSON.stringify({ cmd: `echo first-output; exec sleep ${sleep}` }),
    });
    expect(stream.response.status).toBe(200);
    await stream.waitFor(() => stream.events.some((e) => e.event === "stdout"), "the first stdout event");
    await waitForSandboxProcess(sandbox, ["sleep", sleep]);
    await inject(server, fault, sandbox);
    await stream.finish();
    const last = stream.events.at(-1)?.event;
    expect(["exit", "error"], `events: ${JSON.stringify(stream.events)}`).toContain(last);
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });
});

describe.concurrent("terminal", () => {
  it.each(FAULTS)("an open terminal is closed with a reason on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const terminal = await TerminalClient.open(server, sandbox.sandboxId);
    terminal.type("echo ready-$((40 + 2))\n");
    await terminal.waitForScreen("ready-42");
    await inject(server, fault, sandbox);
    const closed = await within(terminal.closed, 20_000, "the terminal to close");
    // 1000 when the shell was seen to die (its init was killed), 1001 when the server stopped
    // the sandbox, 1011 when the shell's connection broke; never 1006 (the socket dropped without
    // a close frame, as when the server crashed).
    expect([1000, 1001, 1011], JSON.stringify(closed)).toContain(closed.code);
    expect(closed.reason.length).toBeGreaterThan(0);
    expect(["exit", "error"]).toContain(terminal.controls.at(-1)?.type);
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });

  it.each(FAULTS)(
    "a detached terminal ends quietly on %s, and cannot be reattached",
    async (fault: Fault) => {
      const sandbox = await createWithFootprint(server);
      const reconnect = `detached-${fault}-0001`;
      const terminal = await TerminalClient.open(server, sandbox.sandboxId, `reconnect=${reconnect}`);
      terminal.type("echo ready-$((40 + 2))\n");
      await terminal.waitForScreen("ready-42");
      terminal.ws.terminate();
      await within(terminal.closed, 5_000, "the client to drop");
      await inject(server, fault, sandbox);
      await assertCleanAfter(server, fault, sandbox);
      expect(await TerminalClient.refusal(server, sandbox.sandboxId, `reconnect=${reconnect}`)).toBe(409);
      await noUnhandledFaults();
    },
  );
});

describe.concurrent("files", () => {
  it.each(FAULTS)("a streaming upload is answered or cut off after 4 MiB on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const upload = new Upload(server, `/v1/sandboxes/${sandbox.sandboxId}/files/content?path=upload.bin`);
    await upload.send(4 * 1024 * 1024);
    await inject(server, fault, sandbox);
    const outcome = await upload.finish();
    if ("status" in outcome) {
      expect(outcome.status, outcome.body).toBeGreaterThanOrEqual(400);
      expect(outcome.status, outcome.body).toBeLessThan(500);
    }
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });

  it.each(FAULTS)("a large download ends short of its size on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const size = 64 * 1024 * 1024;
    const made = await server.api.exec(sandbox.sandboxId, `head -c ${size} /dev/zero > big.bin`);
    expect(made.body.exitCode).toBe(0);
    const download = await StreamReader.open(
      server,
      `/v1/sandboxes/${sandbox.sandboxId}/files/content?path=big.bin`,
    );
    expect(download.response.status).toBe(200);
    await download.waitFor(() => download.bytes > 0, "the first bytes of the download");
    await inject(server, fault, sandbox);
    const ended = await download.finish();
    expect(ended.how === "error" || download.bytes < size, `${download.bytes} bytes, ${ended.how}`).toBe(
      true,
    );
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });
});

describe.concurrent("background processes", () => {
  it.each(FAULTS)("start, list and get answer 4xx after %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const sleep = uniqueSleep();
    const started = await server.api.call<{ id: string }>(
      "POST",
      `/v1/sandboxes/${sandbox.sandboxId}/processes`,
      {
        cmd: ["sleep", sleep],
      },
    );
    expect(started.status).toBe(201);
    await waitForSandboxProcess(sandbox, ["sleep", sleep]);
    await inject(server, fault, sandbox);
    await assertCleanAfter(server, fault, sandbox);
    const base = `/v1/sandboxes/${sandbox.sandboxId}/processes`;
    for (const [method, path, body] of [
      ["GET", base, undefined],
      ["GET", `${base}/${started.body.id}`, undefined],
      ["GET", `${base}/${started.body.id}/output`, undefined],
      ["POST", base, { cmd: "true" }],
      ["POST", `${base}/${started.body.id}/signal`, { signal: "SIGTERM" }],
    ] as const) {
      const response = await server.api.call(method, path, body);
      expect(response.status, `${method} ${path}`).toBe(409);
    }
    await noUnhandledFaults();
  });

  it.each(FAULTS)("following output (raw) ends after the first bytes on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const sleep = uniqueSleep();
    const started = await server.api.call<{ id: string }>(
      "POST",
      `/v1/sandboxes/${sandbox.sandboxId}/processes`,
      {
        cmd: `echo first-output; exec sleep ${sleep}`,
      },
    );
    const follow = await StreamReader.open(
      server,
      `/v1/sandboxes/${sandbox.sandboxId}/processes/${started.body.id}/output?follow=true`,
    );
    expect(follow.response.status).toBe(200);
    await follow.waitFor(() => follow.text.includes("first-output"), "the first output");
    await inject(server, fault, sandbox);
    await follow.finish();
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });

  it.each(FAULTS)("following output (SSE) ends with an error event on %s", async (fault: Fault) => {
    const sandbox = await createWithFootprint(server);
    const sleep = uniqueSleep();
    const started = await server.api.call<{ id: string }>(
      "POST",
      `/v1/sandboxes/${sandbox.sandboxId}/processes`,
      {
        cmd: `echo first-output; exec sleep ${sleep}`,
      },
    );
    const follow = await StreamReader.open(
      server,
      `/v1/sandboxes/${sandbox.sandboxId}/processes/${started.body.id}/output?follow=true`,
      { headers: { accept: "text/event-stream" } },
    );
    await follow.waitFor(() => follow.events.some((e) => e.event === "output"), "the first output event");
    await inject(server, fault, sandbox);
    const ended = await follow.finish();
    expect(ended.how).toBe("end");
    if (fault === "kill-init" && follow.events.at(-1)?.event === "exit") {
      // The process was seen to die with its init (SIGKILL): a true exit, not a failure.
      expect(follow.events.at(-1)).toMatchObject({ data: { state: "exited", exitCode: 137 } });
    } else {
      expect(follow.events.at(-1)).toMatchObject({ event: "error", data: { code: expect.any(String) } });
    }
    await assertCleanAfter(server, fault, sandbox);
    await noUnhandledFaults();
  });

  it.each(FAULTS)(
    "following a silent process answers its status line at once and ends on %s",
    async (fault: Fault) => {
      const sandbox = await createWithFootprint(server);
      const sleep = uniqueSleep();
      const started = await server.api.call<{ id: string }>(
        "POST",
        `/v1/sandboxes/${sandbox.sandboxId}/processes`,
        { cmd: ["sleep", sleep] },
      );
      await waitForSandboxProcess(sandbox, ["sleep", sleep]);
      // StreamReader.open resolves on the status line: a silent process used to send none.
      const follow = await StreamReader.open(
        server,
        `/v1/sandboxes/${sandbox.sandboxId}/processes/${started.body.id}/output?follow=true`,
      );
      expect(follow.response.status).toBe(200);
      await inject(server, fault, sandbox);
      await follow.finish();
      await assertCleanAfter(server, fault, sandbox);
      await noUnhandledFaults();
    },
  );
});
