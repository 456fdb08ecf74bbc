import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { PtyProcess } from "@polydev/core";
import { waitFor } from "@polydev/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAlive } from "./process-tree.js";
import type { AgentFixture } from "./testing/agent-fixture.js";
import { startAgentFixture } from "./testing/agent-fixture.js";

let fixture: AgentFixture;
beforeEach(async () => {
  fixture = await startAgentFixture();
});
afterEach(async () => {
  await fixture.cleanup();
});

function screenOf(term: PtyProcess): () => string {
  let screen = "";
  term.output.on("data", (chunk: Buffer) => {
    screen += chunk.toString("utf8");
  });
  return () => screen;
}

const shows = (screen: () => string, text: string) =>
  waitFor(`the terminal to show ${JSON.stringify(text)}`, async () =>
    screen().includes(text) ? true : undefined,
  );

describe("pty", () => {
  it("runs an interactive program on a terminal whose size follows resize", async () => {
    const term = await fixture.agent.openPty({ argv: ["/bin/sh"], cols: 80, rows: 24 });
    const screen = screenOf(term);
    term.write("stty size; tty >/dev/null && echo on-a-tty\n");
    await shows(screen, "24 80");
    await shows(screen, "on-a-tty");
    term.resize(100, 33);
    term.write("echo $((6 * 7)); stty size\n");
    await shows(screen, "33 100");
    expect(screen()).toContain("42");
    term.write("exit 4\n");
    expect(await term.exited).toMatchObject({ exitCode: 4, signal: null });
  });

  it("starts a login shell by default, in the home, with TERM set", async () => {
    const term = await fixture.agent.openPty({ cols: 80, rows: 24 });
    const screen = screenOf(term);
    term.write('echo "at:$(pwd) term:$TERM"\n');
    await shows(screen, `at:${fixture.home} term:xterm-256color`);
    term.write("exit\n");
    expect((await term.exited).exitCode).toBe(0);
  });

  it("hangs up the terminal's processes when the connection goes away", async () => {
    const pidFile = join(fixture.home, "pty.pid");
    await fixture.agent.openPty({
      argv: ["/bin/sh", "-c", `echo $$ > ${pidFile}; exec sleep 30`],
      cols: 80,
      rows: 24,
    });
    const pid = await waitFor("the program's pid", async () => {
      const text = await readFile(pidFile, "utf8").catch(() => "");
      return text.endsWith("\n") ? Number(text) : undefined;
    });
    await fixture.agent.close();
    await waitFor("the program to be gone", async () => ((await isAlive(pid)) ? undefined : true));
  });

  it("delivers signals to the program", async () => {
    const term = await fixture.agent.openPty({ argv: ["sleep", "30"], cols: 80, rows: 24 });
    term.kill("SIGKILL");
    expect(await term.exited).toMatchObject({ exitCode: null, signal: "SIGKILL" });
  });
});
