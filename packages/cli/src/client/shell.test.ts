/**
 * `polydev sandbox shell` in a real pseudo-terminal: the local terminal is attached to a shell in
 * a real sandbox, follows window resizes, and the command ends with the shell's exit code.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IPty } from "node-pty";
import { spawn } from "node-pty";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "../../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../../server/src/testing/harness.js";
import { CLI_ARGV, REPO_ROOT } from "../testing/cli-process.js";

let t: TestServer;
let user: ApiClient;
let box: string;
let home: string;

beforeAll(async () => {
  t = await startTestServer();
  user = await createUser(t.api, "shell-user");
  box = await user.createSandbox({ memoryMb: 256 });
  home = await mkdtemp(join(tmpdir(), "polydev-shell-home-"));
});
afterAll(async () => {
  await t?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

/** The CLI in a pseudo-terminal, with what it printed so far. */
function openCli(args: string[]): { term: IPty; screen: () => string; exited: Promise<number> } {
  const term = spawn(process.execPath, [...CLI_ARGV, ...args], {
    cols: 90,
    rows: 30,
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: home,
      XDG_CONFIG_HOME: join(home, "xdg"),
      TERM: "xterm",
      POLYDEV_URL: t.url,
      POLYDEV_API_KEY: user.key,
    },
  });
  let output = "";
  term.onData((data) => {
    output += data;
  });
  const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
  return { term, screen: () => output, exited };
}

async function until(screen: () => string, pattern: RegExp): Promise<void> {
  for (let waited = 0; waited < 30_000; waited += 25) {
    if (pattern.test(screen())) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no ${pattern} on the screen: ${JSON.stringify(screen().slice(-600))}`);
}

describe("polydev sandbox shell", () => {
  it("attaches the terminal to a remote shell and exits with its exit code", async () => {
    const cli = openCli(["sandbox", "shell", box]);
    await until(cli.screen, /Ctrl-\] detaches/);
    // The quotes keep the typed line from matching: only the shell's output says hello.
    cli.term.write("echo hel''lo\r");
    await until(cli.screen, /[\r\n]hello\r*\n/);
    cli.term.resize(111, 33);
    await new Promise((resolve) => setTimeout(resolve, 200));
    cli.term.write("stty size\r");
    await until(cli.screen, /33 111/);
    cli.term.write("exit 4\r");
    expect(await cli.exited).toBe(4);
  }, 90_000);

  it("detaches with Ctrl-] and reattaches to the same shell with --reconnect", async () => {
    const first = openCli(["sandbox", "shell", box]);
    await until(first.screen, /Ctrl-\] detaches/);
    first.term.write("export KEPT=value-$((20 + 22))\r");
    first.term.write("\u001d");
    expect(await first.exited).toBe(0);
    const reconnect = /--reconnect (\S+)/.exec(first.screen())?.[1];
    expect(reconnect).toMatch(/^cli-/);

    const second = openCli(["sandbox", "shell", "--reconnect", reconnect ?? "", box]);
    await until(second.screen, /Reattached to/);
    second.term.write("echo got-$KEPT\r");
    await until(second.screen, /got-value-42/);
    second.term.write("exit\r");
    expect(await second.exited).toBe(0);
  }, 90_000);

  it("fails with the API's message for an unknown sandbox", async () => {
    const cli = openCli(["sandbox", "shell", "sbx_nope"]);
    expect(await cli.exited).toBe(1);
    expect(cli.screen()).toMatch(/polydev: .*\(not_found\)/);
  }, 60_000);
});
