/** `polydev events` as a child process against a real server, stopped by Ctrl-C. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "../../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../../server/src/testing/harness.js";
import { runCli } from "../testing/cli-process.js";

let t: TestServer;
let user: ApiClient;
let home: string;

beforeAll(async () => {
  t = await startTestServer();
  user = await createUser(t.api, "cli-events");
  home = await mkdtemp(join(tmpdir(), "polydev-cli-events-"));
});
afterAll(async () => {
  await t?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("polydev events", () => {
  it("prints the user's events, one per line, until Ctrl-C", async () => {
    const sandbox = await user.createSandbox({ network: "none" });
    const env = { PATH: process.env.PATH, HOME: home, POLYDEV_URL: t.url, POLYDEV_API_KEY: user.key };
    const json = await runCli(["events", "--json", "--after", "0-0"], {
      env,
      signalWhen: { output: /"state":"running"/, signal: "SIGINT" },
    });
    expect(json.stderr).toBe("");
    expect(json.code).toBe(0);
    const lines = json.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { data: { state: string } });
    expect(lines.map((e) => e.data.state)).toEqual(["creating", "running"]);

    const plain = await runCli(["events", "--after", "0-0"], {
      env,
      signalWhen: { output: /running/, signal: "SIGINT" },
    });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(`sandbox ${sandbox} creating\\n.*sandbox ${sandbox} running`));
  });

  it("says why an admin-only stream is refused, exit 1", async () => {
    const refused = await runCli(["events", "--all"], {
      env: { PATH: process.env.PATH, HOME: home, POLYDEV_URL: t.url, POLYDEV_API_KEY: user.key },
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("only admins");
  });
});
