import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, readSse, startTestServer } from "./testing/harness.js";

let t: TestServer;
let api: ApiClient;
beforeAll(async () => {
  t = await startTestServer();
  api = await createUser(t.api, "sandbox-user");
});
afterAll(async () => {
  await t?.close();
});

describe("sandbox lifecycle", () => {
  it("creates, lists, gets and destroys a sandbox", async () => {
    const created = await api.call<{
      id: string;
      state: string;
      memoryMb: number;
      network: string;
      envKeys: string[];
    }>("POST", "/v1/sandboxes", { memoryMb: 256, env: { GREETING: "hi" }, metadata: { project: "demo" } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      state: "running",
      memoryMb: 256,
      network: "none",
      envKeys: ["GREETING"],
    });
    const id = created.body.id;

    const list = await api.call<{ items: { id: string }[] }>("GET", "/v1/sandboxes");
    expect(list.body.items.map((s) => s.id)).toContain(id);
    const env = await api.exec(id, "echo $GREETING");
    expect(env.body.stdout).toBe("hi\n");

    const destroyed = await api.call<{ state: string }>("DELETE", `/v1/sandboxes/${id}`);
    expect(destroyed.status).toBe(200);
    expect(destroyed.body.state).toBe("destroyed");
    const again = await api.call<{ state: string }>("DELETE", `/v1/sandboxes/${id}`);
    expect(again.body.state).toBe("destroyed");
    const exec = await api.exec(id, "true");
    expect(exec.status).toBe(409);
    expect(exec.body).toMatchObject({ error: { code: "sandbox_not_running" } });
  });

  it.each([
    [{ bogus: 1 }, "bogus"],
    [{ memoryMb: "lots" }, "memoryMb"],
    [{ memoryMb: -5 }, "memoryMb"],
    [{ memoryMb: 10_000_000 }, "memoryMb"],
    [{ pidsMax: 0 }, "pidsMax"],
    [{ cpu: 1000 }, "cpu"],
    [{ network: "bridge" }, "network"],
    [{ env: { "1BAD": "x" } }, "env"],
  ])("rejects %j with 400 naming %s", async (body, field) => {
    const response = await api.call<{ error: { code: string; message: string } }>(
      "POST",
      "/v1/sandboxes",
      body,
    );
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("invalid_request");
    expect(response.body.error.message).toContain(field);
  });

  it("hibernates and resumes; exec on a hibernated sandbox resumes it", async () => {
    const id = await api.createSandbox();
    const started = await api.call<{ id: string }>("POST", `/v1/sandboxes/${id}/processes`, {
      cmd: "i=0; while true; do i=$((i+1)); echo $i > counter; sleep 0.05; done",
    });
    expect(started.status).toBe(201);
    await waitFor(async () => (await api.exec(id, "cat counter")).body.stdout.trim() !== "");
    const before = Number((await api.exec(id, "cat counter")).body.stdout);
    const hibernated = await api.call<{ state: string }>("POST", `/v1/sandboxes/${id}/hibernate`);
    expect(hibernated.body.state).toBe("hibernated");
    expect((await t.server.store.sandboxes.get(id))?.state).toBe("hibernated");
    // Unfrozen, the loop would count ~20 in this second; frozen it makes no progress.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const resumed = await api.exec(id, "cat counter");
    expect(resumed.status).toBe(200);
    expect(Number(resumed.body.stdout) - before).toBeLessThan(6);
    const after = await api.call<{ state: string }>("GET", `/v1/sandboxes/${id}`);
    expect(after.body.state).toBe("running");
    // The lifecycle log tells the story, oldest first.
    const logs = await api.call<{ items: { message: string; source: string }[] }>(
      "GET",
      `/v1/sandboxes/${id}/logs`,
    );
    const lifecycle = logs.body.items.filter((l) => l.source === "server").map((l) => l.message);
    expect(lifecycle).toEqual([
      expect.stringMatching(/^created from .* with the namespace driver: network \w+, \d+ CPU/),
      expect.stringMatching(/^hibernated/),
      expect.stringMatching(/^resumed/),
    ]);
  });
});

describe("exec", () => {
  let id: string;
  beforeAll(async () => {
    id = await api.createSandbox();
  });

  it("runs a shell line and an argv array with exit codes", async () => {
    const shell = await api.exec(id, "echo out; echo err >&2; exit 3");
    expect(shell.body).toMatchObject({ exitCode: 3, stdout: "out\n", stderr: "err\n", timedOut: false });
    const argv = await api.exec(id, ["printf", "%s|", "a b", "c"]);
    expect(argv.body.stdout).toBe("a b|c|");
  });

  it("passes stdin, cwd and env", async () => {
    await api.exec(id, "mkdir -p work/sub");
    const result = await api.exec(id, "cat; pwd; echo $X", {
      stdin: "hello\n",
      cwd: "work/sub",
      env: { X: "y" },
    });
    expect(result.body.stdout).toBe("hello\n/home/user/work/sub\ny\n");
  });

  it("takes 10 MB of stdin without hanging, read or not", async () => {
    const big = "x".repeat(10 * 1024 * 1024);
    const counted = await api.exec(id, "wc -c", { stdin: big });
    expect(counted.body.stdout.trim()).toBe(String(big.length));
    const ignored = await api.exec(id, "true", { stdin: big });
    expect(ignored.body.exitCode).toBe(0);
  });

  it("answers a command that does not exist with a clean non-zero exit", async () => {
    const result = await api.exec(id, ["definitely-not-a-command"]);
    expect(result.status).toBe(200);
    expect(result.body.exitCode).not.toBe(0);
    expect(result.body.stderr.length).toBeGreaterThan(0);
  });

  it("kills a command at its timeout", async () => {
    const result = await api.exec(id, "sleep 30", { timeoutMs: 300 });
    expect(result.body.timedOut).toBe(true);
    expect(result.body.exitCode).not.toBe(0);
  });

  it("streams output as server-sent events, in order, ending with exit", async () => {
    const response = await fetch(`${t.url}/v1/sandboxes/${id}/exec`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${api.key}`,
        accept: "text/event-stream",
        "content-type": "application/json",
      },
      body: JSON.stringify({ cmd: "for i in 1 2 3; do echo line$i; sleep 0.05; done; echo bad >&2; exit 4" }),
    });
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const events = await readSse(response);
    const stdout = events
      .filter((e) => e.event === "stdout")
      .map((e) => (e.data as { data: string }).data)
      .join("");
    expect(stdout).toBe("line1\nline2\nline3\n");
    expect(events.some((e) => e.event === "stderr")).toBe(true);
    expect(events.at(-1)).toMatchObject({ event: "exit", data: { exitCode: 4 } });
  });

  it("streams a large output without holding it whole (first bytes arrive before the command ends)", async () => {
    const response = await fetch(`${t.url}/v1/sandboxes/${id}/exec`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${api.key}`,
        accept: "text/event-stream",
        "content-type": "application/json",
      },
      body: JSON.stringify({ cmd: "head -c 1000000 /dev/zero | tr '\\0' a; sleep 2; echo done" }),
    });
    const reader = response.body?.getReader();
    if (!reader) throw new Error("no body");
    const started = Date.now();
    const first = await reader.read();
    expect(first.done).toBe(false);
    expect(Date.now() - started).toBeLessThan(1500);
    let total = first.value?.length ?? 0;
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      total += next.value.length;
    }
    expect(total).toBeGreaterThan(1_000_000);
  });

  it("rejects malformed exec requests with 400", async () => {
    for (const body of [
      {},
      { cmd: "" },
      { cmd: [] },
      { cmd: 5 },
      { cmd: "true", extra: 1 },
      { cmd: "true", timeoutMs: -1 },
    ]) {
      const response = await api.call("POST", `/v1/sandboxes/${id}/exec`, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body).toMatchObject({ error: { code: "invalid_request" } });
    }
  });
});

describe("background processes", () => {
  it("starts, lists, reattaches from an offset, signals, and records the exit", async () => {
    const id = await api.createSandbox();
    const started = await api.call<{ id: string; state: string }>("POST", `/v1/sandboxes/${id}/processes`, {
      cmd: "echo first; trap 'echo got-term; exit 7' TERM; while true; do sleep 0.1; done",
    });
    expect(started.status).toBe(201);
    const pid = started.body.id;
    await waitFor(async () => {
      const output = await api.call("GET", `/v1/sandboxes/${id}/processes/${pid}/output`);
      return String(output.body).includes("first");
    });
    const list = await api.call<{ items: { id: string; state: string }[] }>(
      "GET",
      `/v1/sandboxes/${id}/processes`,
    );
    expect(list.body.items).toEqual([expect.objectContaining({ id: pid, state: "running" })]);
    const fromOffset = await api.call("GET", `/v1/sandboxes/${id}/processes/${pid}/output?offset=2`);
    expect(String(fromOffset.body)).toBe("rst\n");

    const follow = fetch(`${t.url}/v1/sandboxes/${id}/processes/${pid}/output?follow=true`, {
      headers: { authorization: `Bearer ${api.key}`, accept: "text/event-stream" },
    });
    const signalled = await api.call("POST", `/v1/sandboxes/${id}/processes/${pid}/signal`, {
      signal: "SIGTERM",
    });
    expect(signalled.status).toBe(200);
    const events = await readSse(await follow);
    const text = events
      .filter((e) => e.event === "output")
      .map((e) => (e.data as { data: string }).data)
      .join("");
    expect(text).toContain("got-term");
    expect(events.at(-1)).toMatchObject({ event: "exit", data: { state: "exited", exitCode: 7 } });
  });

  it("answers unknown process ids with 404", async () => {
    const id = await api.createSandbox();
    const response = await api.call("GET", `/v1/sandboxes/${id}/processes/nope`);
    expect(response.status).toBe(404);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("condition not met in time");
}
