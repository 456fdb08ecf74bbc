import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ExecRequest } from "@polydev/core";
import { waitFor } from "@polydev/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAlive } from "./process-tree.js";
import type { AgentFixture } from "./testing/agent-fixture.js";
import { readText, startAgentFixture } from "./testing/agent-fixture.js";

let fixture: AgentFixture;
beforeEach(async () => {
  fixture = await startAgentFixture();
});
afterEach(async () => {
  await fixture.cleanup();
});

async function run(request: ExecRequest, stdin?: string | Buffer) {
  const process = await fixture.agent.exec(request);
  process.stdin.end(stdin);
  const [stdout, stderr, exit] = await Promise.all([
    readText(process.stdout),
    readText(process.stderr),
    process.exited,
  ]);
  return { stdout, stderr, ...exit };
}

describe("exec", () => {
  it("runs argv as given, with stdout, stderr and the exit code", async () => {
    expect(await run({ argv: ["echo", "hi", "$NOT_EXPANDED"] })).toMatchObject({
      stdout: "hi $NOT_EXPANDED\n",
      stderr: "",
      exitCode: 0,
      signal: null,
      timedOut: false,
    });
    const failing = await run({ argv: ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"] });
    expect(failing).toMatchObject({ stdout: "out\n", stderr: "err\n", exitCode: 3 });
  });

  it("starts in the home or a directory relative to it, with the base env plus the request's", async () => {
    const home = await run({
      argv: ["/bin/sh", "-c", 'pwd; echo "$HOME $GREETING"'],
      env: { GREETING: "hello" },
    });
    expect(home.stdout).toBe(`${fixture.home}\n${fixture.home} hello\n`);
    await fixture.agent.files.mkdir("sub/dir");
    expect((await run({ argv: ["pwd"], cwd: "sub/dir" })).stdout).toBe(`${join(fixture.home, "sub/dir")}\n`);
  });

  it("never passes the host's environment through", async () => {
    process.env.POLYDEV_AGENT_TEST_HOST_ONLY = "leaked";
    try {
      expect((await run({ argv: ["/usr/bin/env"] })).stdout).not.toContain("POLYDEV_AGENT_TEST_HOST_ONLY");
    } finally {
      delete process.env.POLYDEV_AGENT_TEST_HOST_ONLY;
    }
  });

  it("streams stdin to the process and closes it at the end", async () => {
    const process = await fixture.agent.exec({ argv: ["cat"] });
    const output = readText(process.stdout);
    process.stdin.write("first ");
    process.stdin.write("second");
    process.stdin.end();
    expect(await output).toBe("first second");
    expect((await process.exited).exitCode).toBe(0);
  });

  it("takes 10 MB of stdin, and discards it cleanly when the process never reads it", async () => {
    const big = Buffer.alloc(10 * 1024 * 1024, "a");
    expect((await run({ argv: ["wc", "-c"] }, big)).stdout.trim()).toBe(String(big.length));
    const ignoring = await run({ argv: ["/bin/sh", "-c", "sleep 0.1; exit 4"] }, big);
    expect(ignoring.exitCode).toBe(4);
  });

  it("kills the whole process group at the timeout and says so", async () => {
    const pidFile = join(fixture.home, "child.pid");
    const result = await run({
      argv: ["/bin/sh", "-c", `sleep 30 & echo $! > ${pidFile}; wait`],
      timeoutMs: 300,
    });
    expect(result).toMatchObject({ timedOut: true, signal: "SIGKILL", exitCode: null });
    expect(result.durationMs).toBeLessThan(5000);
    const grandchild = Number(await readFile(pidFile, "utf8"));
    await waitFor("the timed-out command's child to be gone", async () =>
      (await isAlive(grandchild)) ? undefined : true,
    );
  });

  it("delivers signals to the command", async () => {
    const ready = join(fixture.home, "ready");
    const trapping = await fixture.agent.exec({
      argv: ["/bin/sh", "-c", `trap 'echo term; exit 9' TERM; touch ${ready}; while :; do sleep 0.05; done`],
    });
    trapping.stdin.end();
    const stdout = readText(trapping.stdout);
    await waitFor("the trap to be set", () =>
      stat(ready)
        .then(() => true)
        .catch(() => undefined),
    );
    trapping.kill("SIGTERM");
    expect(await stdout).toBe("term\n");
    expect((await trapping.exited).exitCode).toBe(9);

    const killed = await fixture.agent.exec({ argv: ["sleep", "30"] });
    killed.stdin.end();
    killed.kill("SIGKILL");
    expect(await killed.exited).toMatchObject({ exitCode: null, signal: "SIGKILL", timedOut: false });
  });

  it("reports a command that does not exist as exit 127 with a message, not as an error", async () => {
    const result = await run({ argv: ["polydev-no-such-command"] });
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toContain("polydev-no-such-command");
  });

  it("kills the process when the call's signal aborts", async () => {
    const controller = new AbortController();
    const process = await fixture.agent.exec({ argv: ["sleep", "30"] }, controller.signal);
    process.stdin.end();
    await sleep(50);
    controller.abort();
    expect(await process.exited).toMatchObject({ signal: "SIGKILL" });
    await expect(fixture.agent.exec({ argv: ["true"] }, controller.signal)).rejects.toMatchObject({
      code: "timeout",
    });
  });

  it("rejects a malformed request with invalid_request", async () => {
    await expect(fixture.agent.exec({ argv: [] })).rejects.toMatchObject({ code: "invalid_request" });
  });
});
