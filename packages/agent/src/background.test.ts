import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import type { AgentConnection } from "@polydev/core";
import { waitFor } from "@polydev/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectAgent } from "./connect.js";
import { createInProcessAgent } from "./in-process.js";
import type { AgentFixture } from "./testing/agent-fixture.js";
import { readText, startAgentFixture } from "./testing/agent-fixture.js";

const exitedState = (agent: AgentConnection, id: string) =>
  waitFor(`process ${id} to exit`, async () => {
    const info = await agent.getBackground(id);
    return info.state === "exited" ? info : undefined;
  });

let fixture: AgentFixture;
beforeEach(async () => {
  fixture = await startAgentFixture();
});
afterEach(async () => {
  // Whatever a test left running goes with it, and its wrapper has written its exit file before
  // the state directory is removed.
  for (const info of await fixture.agent.listBackground().catch(() => [])) {
    if (info.state !== "running") continue;
    await fixture.agent.signalBackground(info.id, "SIGKILL").catch(() => undefined);
    await exitedState(fixture.agent, info.id);
  }
  await fixture.cleanup();
});

describe("background processes", () => {
  it("starts, lists, attaches from an offset, follows, signals and records the exit code", async () => {
    const { agent } = fixture;
    const info = await agent.startBackground({
      argv: ["/bin/sh", "-c", "echo hello; trap 'echo bye; exit 5' TERM; while :; do sleep 0.05; done"],
    });
    expect(info).toMatchObject({
      state: "running",
      exitCode: null,
      argv: ["/bin/sh", "-c", expect.any(String)],
    });
    expect((await agent.listBackground()).map((listed) => listed.id)).toEqual([info.id]);
    await waitFor("the first output", async () =>
      (await agent.getBackground(info.id)).outputBytes >= 6 ? true : undefined,
    );
    expect(await readText(await agent.attachBackground(info.id, { fromOffset: 2, follow: false }))).toBe(
      "llo\n",
    );

    const following = agent.attachBackground(info.id, { follow: true }).then(readText);
    await agent.signalBackground(info.id, "SIGTERM");
    // The whole group gets the signal, so the shell may also report its `sleep` as Terminated.
    const output = await following;
    expect(output).toMatch(/^hello\n(Terminated\n)?bye\n$/);
    expect(await agent.getBackground(info.id)).toMatchObject({
      state: "exited",
      exitCode: 5,
      outputBytes: output.length,
    });
    await expect(agent.signalBackground(info.id, "SIGTERM")).rejects.toMatchObject({
      code: "process_not_running",
    });
  });

  it("records the exit code of a process that ends on its own, with cwd and env", async () => {
    await fixture.agent.files.mkdir("work");
    const info = await fixture.agent.startBackground({
      argv: ["/bin/sh", "-c", 'echo "$PWD $FLAVOUR" >&2; exit 3'],
      cwd: "work",
      env: { FLAVOUR: "mint" },
    });
    expect(await exitedState(fixture.agent, info.id)).toMatchObject({ exitCode: 3, signal: null });
    expect(await readText(await fixture.agent.attachBackground(info.id))).toBe(
      `${join(fixture.home, "work")} mint\n`,
    );
  });

  it("stops following when the attach is aborted", async () => {
    const info = await fixture.agent.startBackground({ argv: ["sleep", "30"] });
    const controller = new AbortController();
    const output = await fixture.agent.attachBackground(info.id, { signal: controller.signal });
    const reading = readText(output).catch((error: unknown) => error);
    controller.abort();
    expect(await reading).toMatchObject({ code: "ERR_STREAM_PREMATURE_CLOSE" });
    expect((await fixture.agent.getBackground(info.id)).state).toBe("running");
  });

  it("answers not_found for an unknown id", async () => {
    await expect(fixture.agent.getBackground("proc_000000000000")).rejects.toMatchObject({
      code: "not_found",
    });
    await expect(fixture.agent.attachBackground("../../etc")).rejects.toMatchObject({ code: "not_found" });
  });

  it("survives the agent: a fresh one on the same state directory lists, attaches and signals", async () => {
    const agentProcess = spawn(
      process.execPath,
      [
        "--conditions=source",
        "--import",
        "tsx",
        fileURLToPath(new URL("./main.ts", import.meta.url)),
        "--home",
        fixture.home,
        "--state-dir",
        fixture.stateDir,
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    const killed = new Promise((resolve) => agentProcess.once("exit", resolve));
    try {
      const first = await connectAgent(
        Duplex.from({ readable: agentProcess.stdout, writable: agentProcess.stdin }),
      );
      await first.startBackground({
        argv: ["/bin/sh", "-c", "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after; exit 7"],
      });
      await first.startBackground({ argv: ["sleep", "30"] });
      agentProcess.kill("SIGKILL");
      await killed;
    } finally {
      agentProcess.kill("SIGKILL");
    }

    const second = await createInProcessAgent(fixture.launcher);
    try {
      const listed = await second.listBackground();
      expect(listed.map((info) => [info.state, info.argv[0]])).toEqual([
        ["running", "/bin/sh"],
        ["running", "sleep"],
      ]);
      const [waiting, sleeping] = listed;
      if (waiting === undefined || sleeping === undefined) throw new Error("unreachable");
      const following = second.attachBackground(waiting.id).then(readText);
      await writeFile(join(fixture.home, "go"), "");
      expect(await following).toBe("before\nafter\n");
      expect(await exitedState(second, waiting.id)).toMatchObject({ exitCode: 7 });

      await second.signalBackground(sleeping.id, "SIGTERM");
      expect(await exitedState(second, sleeping.id)).toMatchObject({ exitCode: 143 });
    } finally {
      await second.close();
    }
  });
});
