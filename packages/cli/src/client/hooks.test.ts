/**
 * `polydev webhook` and `polydev mcp`, run as child processes against a real server: the
 * signing secret is printed once, listings never show secrets, and mistakes exit 2 or 1 with a
 * message.
 */
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

function env(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, "xdg"),
    POLYDEV_URL: t.url,
    POLYDEV_API_KEY: user.key,
  };
}

beforeAll(async () => {
  t = await startTestServer({ webhooks: { allowPrivate: true } });
  user = await createUser(t.api, "hooks-user");
  home = await mkdtemp(join(tmpdir(), "polydev-cli-hooks-"));
});
afterAll(async () => {
  await t?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("polydev webhook", () => {
  it("adds a webhook printing its secret once, lists it without the secret, shows its log and removes it", async () => {
    const add = await runCli(
      ["webhook", "add", "http://127.0.0.1:9/hook", "--events", "run.failed,group.failed"],
      { env: env() },
    );
    expect(add.code, add.stderr).toBe(0);
    const id = /webhook (whk_\S+)/.exec(add.stdout)?.[1];
    const secret = /(whsec_\S+)/.exec(add.stdout)?.[1];
    expect(id).toBeDefined();
    expect(secret).toBeDefined();
    const ls = await runCli(["webhook", "ls"], { env: env() });
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain(String(id));
    expect(ls.stdout).toContain("run.failed,group.failed");
    expect(ls.stdout).not.toContain(String(secret));
    const log = await runCli(["webhook", "deliveries", String(id)], { env: env() });
    expect(log.code, log.stderr).toBe(0);
    expect(log.stdout).toBe("No deliveries yet\n");
    const rm1 = await runCli(["webhook", "rm", String(id)], { env: env() });
    expect(rm1.code, rm1.stderr).toBe(0);
    const again = await runCli(["webhook", "rm", String(id)], { env: env() });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("not_found");
  });

  it("exits 2 on a usage mistake and 1 with the server's reason on a refused URL", async () => {
    const missing = await runCli(["webhook", "add"], { env: env() });
    expect(missing.code).toBe(2);
    const bad = await runCli(["webhook", "add", "ftp://example.com/"], { env: env() });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("http or https");
  });
});

describe("polydev mcp", () => {
  it("adds stdio and http servers, lists them without secret values, and removes one", async () => {
    const stdio = await runCli(
      [
        "mcp",
        "add",
        "files",
        "--env",
        "TOKEN=cli-secret-value-123",
        "--",
        "npx",
        "-y",
        "some-mcp-server",
        "--root",
        ".",
      ],
      { env: env() },
    );
    expect(stdio.code, stdio.stderr).toBe(0);
    expect(stdio.stdout).toContain("Added MCP server files (stdio)");
    const http = await runCli(
      [
        "mcp",
        "add",
        "docs",
        "--url",
        "https://mcp.example.com/mcp",
        "--header",
        "Authorization: Bearer cli-header-secret",
      ],
      { env: env() },
    );
    expect(http.code, http.stderr).toBe(0);
    const ls = await runCli(["mcp", "ls", "--json"], { env: env() });
    expect(ls.code, ls.stderr).toBe(0);
    const items = JSON.parse(ls.stdout) as {
      name: string;
      args: string[];
      env: string[];
      headers: string[];
    }[];
    expect(items.map((i) => i.name)).toEqual(["docs", "files"]);
    expect(items[1]?.args).toEqual(["-y", "some-mcp-server", "--root", "."]);
    expect(items[1]?.env).toEqual(["TOKEN"]);
    expect(items[0]?.headers).toEqual(["Authorization"]);
    expect(ls.stdout).not.toContain("cli-secret-value-123");
    expect(ls.stdout).not.toContain("cli-header-secret");
    expect((await runCli(["mcp", "rm", "docs"], { env: env() })).code).toBe(0);
    const both = await runCli(["mcp", "add", "x", "--url", "https://a.example/", "--", "node"], {
      env: env(),
    });
    expect(both.code).toBe(2);
  });
});
