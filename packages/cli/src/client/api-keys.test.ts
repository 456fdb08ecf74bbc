/** `polydev keys ls | create | revoke`, run as child processes against a real server. */
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

function env(key = user.key): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, "xdg"),
    POLYDEV_URL: t.url,
    POLYDEV_API_KEY: key,
  };
}

beforeAll(async () => {
  t = await startTestServer();
  user = await createUser(t.api, "cli-keys");
  home = await mkdtemp(join(tmpdir(), "polydev-cli-keys-"));
}, 60_000);
afterAll(async () => {
  await t?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("polydev keys", () => {
  it("creates a key (secret on stdout once), lists it without the secret, and revokes it", async () => {
    const created = await runCli(["keys", "create", "ci", "--expires-in-days", "7"], { env: env() });
    expect(created.code, created.stderr).toBe(0);
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^pdk_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/not shown again/);
    const whoami = await runCli(["whoami"], { env: env(secret) });
    expect(whoami.stdout).toContain("cli-keys");

    const listed = await runCli(["keys", "ls"], { env: env() });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/ci\s+pdk_/);
    expect(listed.stdout).not.toContain(secret);
    const json = await runCli(["keys", "ls", "--json"], { env: env() });
    const keys = JSON.parse(json.stdout) as { id: string; name: string; expiresAt: string | null }[];
    const ci = keys.find((k) => k.name === "ci");
    expect(ci?.expiresAt).not.toBeNull();

    const revoked = await runCli(["keys", "revoke", ci?.id ?? "missing"], { env: env() });
    expect(revoked.code).toBe(0);
    const refused = await runCli(["whoami"], { env: env(secret) });
    expect(refused.code).toBe(1);
    const again = await runCli(["keys", "revoke", ci?.id ?? "missing"], { env: env() });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/does not exist/);
  }, 60_000);

  it("refuses usage errors with exit code 2", async () => {
    expect((await runCli(["keys", "create"], { env: env() })).code).toBe(2);
    expect((await runCli(["keys", "create", "x", "--expires-in-days", "-1"], { env: env() })).code).toBe(2);
    expect((await runCli(["keys", "revoke"], { env: env() })).code).toBe(2);
  }, 60_000);
});
