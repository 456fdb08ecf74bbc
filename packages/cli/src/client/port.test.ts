/**
 * `polydev port ls | open`, run as child processes against a real server and a real sandbox
 * with no network: the listed port, and a printed link that opens the sandbox's page.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "../../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../../server/src/testing/harness.js";
import { startPreviewApp } from "../../../server/src/testing/preview-app.js";
import { runCli } from "../testing/cli-process.js";

let t: TestServer;
let user: ApiClient;
let home: string;
let sandbox: string;

function loggedIn(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, "xdg"),
    POLYDEV_URL: t.url,
    POLYDEV_API_KEY: user.key,
  };
}

beforeAll(async () => {
  t = await startTestServer();
  user = await createUser(t.api, "cli-ports");
  home = await mkdtemp(join(tmpdir(), "polydev-cli-home-"));
  sandbox = await user.createSandbox({ network: "none" });
  await startPreviewApp(user, sandbox, 8080);
}, 120_000);
afterAll(async () => {
  await t?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("polydev port", () => {
  it("lists the listening ports with their process", async () => {
    const listed = await runCli(["port", "ls", sandbox], { env: loggedIn() });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^PORT\s+ADDRESS\s+PROCESS\n8080\s+127\.0\.0\.1\s+python3 \(\d+\)\n$/);
    const json = await runCli(["port", "ls", "--json", sandbox], { env: loggedIn() });
    expect(JSON.parse(json.stdout)).toEqual([expect.objectContaining({ port: 8080, address: "127.0.0.1" })]);
  });

  it("prints a signed link that opens the page, and says what is wrong with bad input", async () => {
    const opened = await runCli(["port", "open", "--json", sandbox, "8080"], { env: loggedIn() });
    expect(opened.code, opened.stderr).toBe(0);
    const link = JSON.parse(opened.stdout) as { url: string; share: boolean };
    expect(link.share).toBe(false);
    const page = await fetch(link.url);
    expect(await page.text()).toContain("preview page on port 8080");
    const shared = await runCli(["port", "open", "--share", "--expires", "7200", sandbox, "8080"], {
      env: loggedIn(),
    });
    expect(shared.code, shared.stderr).toBe(0);
    expect(shared.stdout).toMatch(/share link\)\n$/);

    const badPort = await runCli(["port", "open", sandbox, "99999"], { env: loggedIn() });
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toContain("PORT is a TCP port number");
    const tooLong = await runCli(["port", "open", "--expires", "7200", sandbox, "8080"], { env: loggedIn() });
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain("use share: true for a longer one");
    const foreign = await runCli(["port", "ls", "sbx_doesnotexist"], { env: loggedIn() });
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain("(not_found)");
  });
});
