/**
 * The `polydev` client commands, run as child processes against a real server (real SQLite,
 * real bubblewrap sandboxes, fake provider APIs on loopback).
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "../../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../../server/src/testing/harness.js";
import { GOOD_CODE, STAND_IN_LOGIN_FLOWS } from "../../../server/src/testing/stand-in-logins.js";
import { runCli } from "../testing/cli-process.js";

let fake: FakeProviders;
let t: TestServer;
let user: ApiClient;
let home: string;

/** A user's environment: a private HOME and config dir, plus the server and key when given. */
function envFor(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, "xdg"), ...extra };
}
function loggedIn(): NodeJS.ProcessEnv {
  return envFor({ POLYDEV_URL: t.url, POLYDEV_API_KEY: user.key });
}

beforeAll(async () => {
  fake = await startFakeProviders();
  t = await startTestServer(
    { upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } },
    { loginFlows: STAND_IN_LOGIN_FLOWS },
  );
  user = await createUser(t.api, "cli-user");
  home = await mkdtemp(join(tmpdir(), "polydev-cli-home-"));
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("polydev login, whoami, logout", () => {
  it("checks the key, saves it mode 600 under XDG_CONFIG_HOME, and later commands use it", async () => {
    const file = join(home, "xdg", "polydev", "config.json");
    const login = await runCli(["login", "--url", `${t.url}/`, "--api-key", user.key], { env: envFor() });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain("as cli-user");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ url: t.url, apiKey: user.key });

    const whoami = await runCli(["whoami"], { env: envFor() });
    expect(whoami.code, whoami.stderr).toBe(0);
    expect(whoami.stdout).toBe(`cli-user (user) on ${t.url}\n`);

    // The environment overrides the saved key.
    const other = await runCli(["whoami"], { env: envFor({ POLYDEV_API_KEY: t.adminKey }) });
    expect(other.stdout).toContain("(admin)");

    const bad = await runCli(["login", "--url", t.url, "--api-key", "pdk_wrong"], { env: envFor() });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^polydev: .+ \(unauthorized\)\n$/);
    expect(JSON.parse(await readFile(file, "utf8")).apiKey).toBe(user.key);

    const logout = await runCli(["logout"], { env: envFor() });
    expect(logout.code).toBe(0);
    await expect(stat(file)).rejects.toMatchObject({ code: "ENOENT" });
    const after = await runCli(["whoami"], { env: envFor() });
    expect(after.code).toBe(1);
    expect(after.stderr).toContain("not logged in");
  });

  it("asks for what is missing, reading piped answers when there is no terminal", async () => {
    const login = await runCli(["login"], { env: envFor(), input: `${t.url}\n${user.key}\n` });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stderr).toContain("API key: ");
    expect(login.stdout + login.stderr).not.toContain(user.key);
    await runCli(["logout"], { env: envFor() });
  });
});

describe("polydev sandbox", () => {
  it("creates, lists, execs (exit code and streams kept apart) and removes", async () => {
    const created = await runCli(["sandbox", "create", "--memory-mb", "256", "--json"], { env: loggedIn() });
    expect(created.code, created.stderr).toBe(0);
    const box = JSON.parse(created.stdout) as { id: string; memoryMb: number; state: string };
    expect(box).toMatchObject({ memoryMb: 256, state: "running" });

    const ls = await runCli(["sandbox", "ls"], { env: loggedIn() });
    expect(ls.code).toBe(0);
    expect(ls.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+STATE\s+AGE\s+DRIVER\s+CPU\s+MEMORY/);
    expect(ls.stdout).toMatch(
      new RegExp(`${box.id}\\s+-\\s+running\\s+\\d+[smhd]\\s+namespace\\s+1\\s+256 MiB`),
    );
    // A driver the server does not run: refused by the server, in its words, before anything starts.
    const otherDriver = await runCli(["sandbox", "create", "--driver", "gvisor"], { env: loggedIn() });
    expect(otherDriver.code).toBe(1);
    expect(otherDriver.stderr).toMatch(/no "gvisor" driver; it runs: namespace/);
    const lsJson = JSON.parse((await runCli(["sandbox", "ls", "--json"], { env: loggedIn() })).stdout);
    expect(lsJson.map((b: { id: string }) => b.id)).toContain(box.id);

    const exec = await runCli(
      ["sandbox", "exec", box.id, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 7"],
      { env: loggedIn() },
    );
    expect(exec).toEqual({ code: 7, stdout: "to-out\n", stderr: "to-err\n" });
    const line = await runCli(["sandbox", "exec", box.id, "--", "echo abc | tr a-c x-z"], {
      env: loggedIn(),
    });
    expect(line).toMatchObject({ code: 0, stdout: "xyz\n" });
    const piped = await runCli(["sandbox", "exec", "--stdin", box.id, "--", "wc", "-l"], {
      env: loggedIn(),
      input: "1\n2\n3\n",
    });
    expect(piped.stdout.trim()).toBe("3");

    const stats = await runCli(["sandbox", "stats", "--json", box.id], { env: loggedIn() });
    expect(JSON.parse(stats.stdout)).toMatchObject({ memoryLimitBytes: 256 * 1024 * 1024 });
    expect((await runCli(["sandbox", "stats", box.id], { env: loggedIn() })).stdout).toMatch(/\/ 256\.0 MiB/);

    const frozen = await runCli(["sandbox", "hibernate", box.id], { env: loggedIn() });
    expect(frozen).toMatchObject({ code: 0, stdout: `${box.id}\n` });
    const listed = await runCli(["sandbox", "ls", "--json"], { env: loggedIn() });
    expect(JSON.parse(listed.stdout)).toContainEqual(
      expect.objectContaining({ id: box.id, state: "hibernated" }),
    );
    const thawed = await runCli(["sandbox", "resume", box.id], { env: loggedIn() });
    expect(thawed).toMatchObject({ code: 0, stdout: `${box.id}\n` });
    expect(
      (await runCli(["sandbox", "exec", box.id, "--", "echo", "awake"], { env: loggedIn() })).stdout,
    ).toBe("awake\n");
    expect((await runCli(["sandbox", "resume"], { env: loggedIn() })).code).toBe(2);

    const removed = await runCli(["sandbox", "rm", box.id], { env: loggedIn() });
    expect(removed).toMatchObject({ code: 0, stdout: `${box.id}\n` });
    const logs = await runCli(["sandbox", "logs", box.id], { env: loggedIn() });
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/destroy/);
    const gone = await runCli(["sandbox", "exec", box.id, "--", "true"], { env: loggedIn() });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^polydev: .+ \(sandbox_not_running\)\n$/);
  }, 90_000); // a dozen CLI processes, each a Node start: slow on a loaded 2-core machine

  it("names a sandbox, and stops, starts and forks it (or says the server's driver cannot)", async () => {
    const created = await runCli(["sandbox", "create", "--name", "cli-named"], { env: loggedIn() });
    expect(created.code, created.stderr).toBe(0);
    const id = created.stdout.trim();
    expect((await runCli(["sandbox", "ls"], { env: loggedIn() })).stdout).toMatch(
      new RegExp(`${id}\\s+cli-named\\s+running`),
    );
    const again = await runCli(["sandbox", "create", "--name", "cli-named"], { env: loggedIn() });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/\(name_taken\)\n$/);

    const { features } = await t.server.driver.probe();
    const stop = await runCli(["sandbox", "stop", "cli-named"], { env: loggedIn() });
    if (features.includes("durable")) {
      expect(stop).toMatchObject({ code: 0, stdout: "cli-named\n" });
      const start = await runCli(["sandbox", "start", "cli-named"], { env: loggedIn() });
      expect(start).toMatchObject({ code: 0, stdout: "cli-named\n" });
    } else {
      expect(stop.code).toBe(1);
      expect(stop.stderr).toMatch(/"durable".* \(feature_unavailable\)\n$/);
    }
    const fork = await runCli(["sandbox", "fork", "--count", "2", id], { env: loggedIn() });
    if (features.includes("fork")) {
      expect(fork.code, fork.stderr).toBe(0);
      const ids = fork.stdout.trim().split("\n");
      expect(ids).toHaveLength(2);
      expect((await runCli(["sandbox", "rm", ...ids], { env: loggedIn() })).code).toBe(0);
    } else {
      expect(fork.code).toBe(1);
      expect(fork.stderr).toMatch(/"fork".* \(feature_unavailable\)\n$/);
    }
    // This server has no image store, so its sandboxes are host views with no disk to snapshot.
    const snapshot = await runCli(["sandbox", "snapshot", id, "alice/snap:1"], { env: loggedIn() });
    expect(snapshot.code).toBe(1);
    expect(snapshot.stderr).toMatch(
      features.includes("snapshot")
        ? /not started from an image.* \(invalid_request\)\n$/
        : /"snapshot".* \(feature_unavailable\)\n$/,
    );
    expect((await runCli(["sandbox", "rm", id], { env: loggedIn() })).code).toBe(0);
  });

  it("answers an unknown sandbox with the API's message and exit 1", async () => {
    const missing = await runCli(["sandbox", "exec", "sbx_nope", "--", "true"], { env: loggedIn() });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^polydev: .*sbx_nope.* \(not_found\)\n$/);
  });
});

describe("polydev sandbox network, audit and presets", () => {
  it("creates an allow-list sandbox, shows and changes its policy, and prints its audit log", async () => {
    const presets = await runCli(["presets", "ls"], { env: loggedIn() });
    expect(presets.code, presets.stderr).toBe(0);
    expect(presets.stdout).toMatch(/^NAME\s+DESCRIPTION\s+ALLOW\s+DENY\n/);
    expect(presets.stdout).toMatch(/\ngithub\s+.*github\.com/);
    expect(presets.stdout).toMatch(/\npackage-registries\s/);

    const created = await runCli(
      [
        "sandbox",
        "create",
        "--memory-mb",
        "256",
        "--network",
        "allowlist",
        "--allow",
        "registry.example.com",
        "--allow",
        "10.20.0.0/16",
        "--preset",
        "github",
        "--json",
      ],
      { env: loggedIn() },
    );
    expect(created.code, created.stderr).toBe(0);
    const box = JSON.parse(created.stdout) as { id: string; network: string; egressPolicy: unknown };
    try {
      expect(box).toMatchObject({
        network: "allowlist",
        egressPolicy: { allow: ["registry.example.com", "10.20.0.0/16"], deny: [], presets: ["github"] },
      });

      const shown = await runCli(["sandbox", "network", box.id], { env: loggedIn() });
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(/^mode\s+allowlist\n/);
      expect(shown.stdout).toMatch(/\nallow\s+registry\.example\.com 10\.20\.0\.0\/16\n/);
      expect(shown.stdout).toMatch(/\neffective allow\s+.*github\.com/);

      const changed = await runCli(["sandbox", "network", box.id, "--deny", "*.evil.example.com", "--json"], {
        env: loggedIn(),
      });
      expect(changed.code, changed.stderr).toBe(0);
      expect(JSON.parse(changed.stdout)).toMatchObject({
        allow: ["registry.example.com", "10.20.0.0/16"],
        deny: ["*.evil.example.com"],
      });
      const emptied = await runCli(["sandbox", "network", box.id, "--preset", ""], { env: loggedIn() });
      expect(emptied.stdout).toMatch(/\npresets\s+-\n/);
      const unknown = await runCli(["sandbox", "network", box.id, "--preset", "no-such-preset"], {
        env: loggedIn(),
      });
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^polydev: .+ \(invalid_request\)\n$/);

      await user.exec(box.id, "getent hosts first-refused.invalid || true", { timeoutMs: 20_000 });
      const audit = await runCli(["sandbox", "audit", box.id], { env: loggedIn() });
      expect(audit.code, audit.stderr).toBe(0);
      expect(audit.stdout).toMatch(/^TIME\s+DECISION\s+REASON\s+KIND\s+HOST\s+ADDRESS\s+OUT\s+IN\n/);
      expect(audit.stdout).toMatch(/denied\s+[a-z_]+\s+dns\s+first-refused\.invalid\s/);

      // --follow prints what happens while it runs; Ctrl-C ends it.
      const follow = runCli(["sandbox", "audit", "--follow", box.id], {
        env: loggedIn(),
        timeoutMs: 60_000,
        signalWhen: { output: /live-refused\.invalid/, signal: "SIGINT" },
      });
      let finished = false;
      void follow.finally(() => {
        finished = true;
      });
      for (let attempt = 0; attempt < 30 && !finished; attempt++)
        await user.exec(box.id, "getent hosts live-refused.invalid; sleep 1", { timeoutMs: 20_000 });
      const followed = await follow;
      expect(followed.code, followed.stderr).toBe(0);
      expect(followed.stdout).toContain("first-refused.invalid");
      expect(followed.stdout).toMatch(/denied\s+[a-z_]+\s+dns\s+live-refused\.invalid\s/);

      const plain = await user.createSandbox({ memoryMb: 256 });
      try {
        const fixed = await runCli(["sandbox", "network", plain, "--allow", "example.com"], {
          env: loggedIn(),
        });
        expect(fixed.code).toBe(1);
        expect(fixed.stderr).toMatch(/^polydev: .+ \(conflict\)\n$/);
        expect((await runCli(["sandbox", "network", plain], { env: loggedIn() })).stdout).toMatch(
          /^mode\s+none/,
        );
      } finally {
        await user.call("DELETE", `/v1/sandboxes/${plain}`);
      }
    } finally {
      await user.call("DELETE", `/v1/sandboxes/${box.id}`);
    }
  }, 180_000);
});

describe("polydev cp", () => {
  it("uploads and downloads a file with its bytes intact, and refuses directories clearly", async () => {
    const box = await user.createSandbox({ memoryMb: 256 });
    const local = await mkdtemp(join(tmpdir(), "polydev-cp-"));
    try {
      const content = randomBytes(300 * 1024);
      await writeFile(join(local, "blob.bin"), content);
      const up = await runCli(["cp", join(local, "blob.bin"), `${box}:in/blob.bin`], { env: loggedIn() });
      expect(up.code, up.stderr).toBe(0);
      const sum = await user.exec(box, "sha256sum in/blob.bin | cut -d' ' -f1");
      const { createHash } = await import("node:crypto");
      expect(sum.body.stdout.trim()).toBe(createHash("sha256").update(content).digest("hex"));

      await mkdir(join(local, "back"));
      const down = await runCli(["cp", `${box}:in/blob.bin`, join(local, "back")], { env: loggedIn() });
      expect(down.code, down.stderr).toBe(0);
      expect((await readFile(join(local, "back", "blob.bin"))).equals(content)).toBe(true);

      const dir = await runCli(["cp", local, `${box}:x`], { env: loggedIn() });
      expect(dir.code).toBe(1);
      expect(dir.stderr).toContain("is a directory");
      const missing = await runCli(["cp", `${box}:nope.txt`, join(local, "nope.txt")], { env: loggedIn() });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^polydev: .+ \(\w+\)\n$/);
      await expect(stat(join(local, "nope.txt.polydev-partial"))).rejects.toThrow();
      const twoLocal = await runCli(["cp", "a", "b"], { env: loggedIn() });
      expect(twoLocal.code).toBe(2);
    } finally {
      await rm(local, { recursive: true, force: true });
      await user.call("DELETE", `/v1/sandboxes/${box}`);
    }
  });
});

describe("polydev creds and run", () => {
  it("stores a key from stdin, lists it without the secret, runs the built-in agent, removes the key", async () => {
    const secret = "sk-ant-cli-test-secret-123456";
    const add = await runCli(["creds", "add", "anthropic"], { env: loggedIn(), input: `${secret}\n` });
    expect(add.code, add.stderr).toBe(0);
    const ls = await runCli(["creds", "ls"], { env: loggedIn() });
    expect(ls.stdout).toMatch(/^PROVIDER\s+KIND/);
    expect(ls.stdout).toMatch(/anthropic\s+api_key/);
    const lsJson = await runCli(["creds", "ls", "--json"], { env: loggedIn() });
    for (const output of [ls, lsJson]) expect(output.stdout + output.stderr).not.toContain(secret);
    expect(JSON.parse(lsJson.stdout)).toEqual([expect.objectContaining({ provider: "anthropic" })]);

    const run = await runCli(["run", "--agent", "builtin", "say hello"], {
      env: loggedIn(),
      timeoutMs: 120_000,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("Hello from the fake anthropic provider.");
    expect(run.stderr).toMatch(/✓ succeeded/);

    const json = await runCli(["run", "--json", "--agent", "builtin", "say hello"], {
      env: loggedIn(),
      timeoutMs: 120_000,
    });
    expect(json.code, json.stderr).toBe(0);
    const events = json.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; seq: number; runId: string });
    expect(events.at(-1)?.type).toBe("done");
    expect(events.map((e) => e.type)).toContain("text");
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));

    // Ctrl-C while the agent waits on a slow provider cancels the run on the server.
    fake.setScript([{ text: "words that take a long time", delayMs: 30_000 }]);
    try {
      const interrupted = await runCli(["run", "--agent", "builtin", "talk slowly"], {
        env: loggedIn(),
        timeoutMs: 60_000,
        signalWhen: { output: /is working in/, signal: "SIGINT" },
      });
      expect(interrupted.code).toBe(1);
      expect(interrupted.stderr).toContain("Cancelling");
      expect(interrupted.stderr).toMatch(/✗ cancelled/);
    } finally {
      fake.setScript(undefined);
    }
    const latest = await user.call<{ items: { state: string; prompt: string }[] }>("GET", "/v1/runs?limit=1");
    expect(latest.body.items[0]).toMatchObject({ prompt: "talk slowly", state: "cancelled" });

    const rmCred = await runCli(["creds", "rm", "anthropic"], { env: loggedIn() });
    expect(rmCred.code).toBe(0);
    const failed = await runCli(["run", "--agent", "builtin", "say hello"], {
      env: loggedIn(),
      timeoutMs: 120_000,
    });
    expect(failed.code).toBe(1);
    // Refused before it starts, saying which provider and how to add it.
    expect(failed.stderr).toContain("(credential_missing)");
    expect(failed.stderr).toContain("polydev creds add anthropic");
  }, 240_000);

  it("logs in through the provider's CLI flow, taking the code from the prompt", async () => {
    const box = await user.createSandbox({ memoryMb: 256 });
    try {
      const login = await runCli(["creds", "login", "claude", "--sandbox", box], {
        env: loggedIn(),
        input: `${GOOD_CODE}\n`,
      });
      expect(login.code, login.stderr).toBe(0);
      expect(login.stdout).toContain("https://claude.ai/oauth/authorize?");
      expect(login.stdout).toContain("credential is stored");
      const ls = await runCli(["creds", "ls", "--json"], { env: loggedIn() });
      expect(JSON.parse(ls.stdout)).toEqual(
        expect.arrayContaining([expect.objectContaining({ provider: "anthropic", kind: "oauth" })]),
      );
      await runCli(["creds", "rm", "anthropic"], { env: loggedIn() });
    } finally {
      await user.call("DELETE", `/v1/sandboxes/${box}`);
    }
  });
});

describe("usage", () => {
  it("exits 2 on command-line mistakes and 0 with --help on every command", async () => {
    for (const args of [
      ["sandbox", "create", "--network", "wifi"],
      ["sandbox", "create", "--memory-mb", "lots"],
      ["sandbox", "create", "--network", "egress", "--allow", "example.com"],
      ["sandbox", "network"],
      ["sandbox", "audit", "--limit", "0", "sbx_1"],
      ["presets", "frobnicate"],
      ["sandbox", "frobnicate"],
      ["sandbox", "ls", "--bogus"],
      ["sandbox", "exec"],
      ["sandbox", "exec", "sbx_1"],
      ["sandbox", "stop"],
      ["sandbox", "fork"],
      ["sandbox", "fork", "--count", "many", "sbx_1"],
      ["sandbox", "fork", "--count", "2", "--name", "only-one", "sbx_1"],
      ["sandbox", "snapshot", "sbx_1"],
      ["sandbox", "snapshot", "sbx_1", "alice/a:1", "extra"],
      ["run", "say hi"],
      ["run", "--agent", "cursor", "say hi"],
      ["creds", "add", "nobody"],
      ["cp", "only-one"],
      ["nonsense"],
    ]) {
      const result = await runCli(args, { env: loggedIn() });
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(/^polydev: /);
    }
    for (const args of [
      ["--help"],
      ["login", "--help"],
      ["logout", "--help"],
      ["whoami", "--help"],
      ["sandbox", "--help"],
      ["sandbox", "create", "--help"],
      ["sandbox", "ls", "--help"],
      ["sandbox", "rm", "--help"],
      ["sandbox", "stop", "--help"],
      ["sandbox", "start", "--help"],
      ["sandbox", "fork", "--help"],
      ["sandbox", "snapshot", "--help"],
      ["sandbox", "exec", "--help"],
      ["sandbox", "shell", "--help"],
      ["sandbox", "logs", "--help"],
      ["sandbox", "stats", "--help"],
      ["sandbox", "network", "--help"],
      ["sandbox", "audit", "--help"],
      ["presets", "--help"],
      ["presets", "ls", "--help"],
      ["cp", "--help"],
      ["run", "--help"],
      ["creds", "--help"],
      ["creds", "add", "--help"],
      ["creds", "ls", "--help"],
      ["creds", "rm", "--help"],
      ["creds", "login", "--help"],
    ]) {
      const result = await runCli(args, { env: envFor() });
      expect(result.code, args.join(" ")).toBe(0);
      expect(result.stdout, args.join(" ")).toMatch(/^Usage: polydev/);
    }
  }, 120_000);

  it("prints its version with --version, -V and version", async () => {
    const { version } = JSON.parse(
      await readFile(resolve(import.meta.dirname, "../../package.json"), "utf8"),
    ) as { version: string };
    for (const flag of ["--version", "-V", "version"]) {
      const result = await runCli([flag], { env: envFor() });
      expect(result.code, flag).toBe(0);
      expect(result.stdout, flag).toBe(`polydev ${version}\n`);
    }
  });
});
