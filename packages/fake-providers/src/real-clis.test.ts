/**
 * The real Claude Code, Codex and Gemini CLIs against the fake, headless, as CLI-NOTES.md says to
 * run them. Each CLI is looked up in $POLYDEV_CLI_BIN_DIR, /tmp/clis/node_modules/.bin, then PATH;
 * a missing one skips its tests with that reason. Each run gets its own HOME and working directory.
 */
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startFakeProviders } from "./server.js";
import { dig } from "./testing/http-client.js";
import type { FakeProviders, RecordedRequest } from "./types.js";

const CLI_TIMEOUT_MS = 120_000;
const PLACEHOLDER_KEY = "pdg_placeholder_key";

const searchDirs = [
  process.env.POLYDEV_CLI_BIN_DIR,
  "/tmp/clis/node_modules/.bin",
  ...(process.env.PATH ?? "").split(delimiter),
].filter((dir): dir is string => typeof dir === "string" && dir.length > 0);

async function findCli(name: string): Promise<string | undefined> {
  for (const dir of searchDirs) {
    const candidate = join(dir, name);
    const found = await access(candidate, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (found) return candidate;
  }
  return undefined;
}

const missingReason = (name: string) =>
  `${name} binary not found in $POLYDEV_CLI_BIN_DIR, /tmp/clis/node_modules/.bin or PATH (install with npm install --prefix /tmp/clis ...)`;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every stdout line that parses as a JSON object: the CLI's stream-json / --json events. */
  events: Record<string, unknown>[];
}

function runCli(bin: string, args: string[], cwd: string, env: Record<string, string>): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    // stdin is closed: Codex otherwise waits for more prompt text on an open pipe.
    const child = spawn(bin, args, {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      signal: AbortSignal.timeout(CLI_TIMEOUT_MS),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, events: jsonLines(stdout) }));
  });
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return [];
    try {
      const value: unknown = JSON.parse(line);
      return typeof value === "object" && value !== null && !Array.isArray(value) ? [{ ...value }] : [];
    } catch {
      return [];
    }
  });
}

/** A fresh HOME and working directory, removed after the test. */
async function withRunDirs<T>(run: (dirs: { home: string; work: string }) => Promise<T>): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), "polydev-fake-cli-"));
  const dirs = { home: join(root, "home"), work: join(root, "work") };
  await mkdir(dirs.home);
  await mkdir(dirs.work);
  try {
    return await run(dirs);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function baseEnv(home: string): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, LANG: "C.UTF-8", TERM: "dumb" };
}

/** Fails with the CLI's own output, which is what one needs to see when a run goes wrong. */
function expectSuccess(run: CliRun): void {
  expect(run.code, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBe(0);
}

let fake: FakeProviders;
beforeAll(async () => {
  fake = await startFakeProviders();
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.setScript(undefined);
  fake.requests.length = 0;
});

const modelRequests = (provider: RecordedRequest["provider"]) =>
  fake.requests.filter((request) => request.provider === provider && request.method === "POST");

describe("Claude Code against the fake", async () => {
  const bin = await findCli("claude");

  const runClaude = (prompt: string, extraArgs: string[], dirs: { home: string; work: string }) =>
    runCli(
      bin ?? "claude",
      ["-p", prompt, "--output-format", "stream-json", "--verbose", ...extraArgs],
      dirs.work,
      {
        ...baseEnv(dirs.home),
        ANTHROPIC_BASE_URL: fake.url,
        ANTHROPIC_API_KEY: PLACEHOLDER_KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      },
    );

  it("completes a text turn", { timeout: CLI_TIMEOUT_MS }, async (context) => {
    context.skip(!bin, missingReason("claude"));
    fake.setScript({ anthropic: [{ text: "pong from the fake" }] });
    const run = await withRunDirs((dirs) => runClaude("say pong", [], dirs));

    expectSuccess(run);
    expect(run.events[0]).toMatchObject({ type: "system", subtype: "init" });
    expect(run.events).toContainEqual(
      expect.objectContaining({
        type: "assistant",
        message: expect.objectContaining({ content: [{ type: "text", text: "pong from the fake" }] }),
      }),
    );
    expect(run.events.at(-1)).toMatchObject({
      type: "result",
      subtype: "success",
      result: "pong from the fake",
    });
    const requests = modelRequests("anthropic");
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      path: "/v1/messages",
      query: { beta: "true" },
      headers: { "x-api-key": PLACEHOLDER_KEY },
      body: { stream: true },
    });
    expect(JSON.stringify(dig(requests[0]?.body, "messages"))).toContain("say pong");
  });

  it("runs a scripted Bash call that creates a file", { timeout: CLI_TIMEOUT_MS }, async (context) => {
    context.skip(!bin, missingReason("claude"));
    fake.setScript({
      anthropic: [{ toolCall: { command: "echo made by claude > made.txt" } }, { text: "file made" }],
    });
    const { run, content } = await withRunDirs(async (dirs) => {
      const run = await runClaude("make the file", ["--allowedTools", "Bash"], dirs);
      return { run, content: await readFile(join(dirs.work, "made.txt"), "utf8").catch(() => undefined) };
    });

    expectSuccess(run);
    expect(content).toBe("made by claude\n");
    expect(JSON.stringify(run.events)).toContain('"name":"Bash"');
    expect(run.events.at(-1)).toMatchObject({ type: "result", subtype: "success", result: "file made" });
    const requests = modelRequests("anthropic");
    expect(requests).toHaveLength(2);
    expect(JSON.stringify(requests[1]?.body)).toContain('"type":"tool_result"');
  });
});

describe("Codex against the fake", async () => {
  const bin = await findCli("codex");

  const runCodex = async (prompt: string, extraArgs: string[], dirs: { home: string; work: string }) => {
    const codexHome = join(dirs.home, ".codex");
    await mkdir(codexHome);
    await writeFile(
      join(codexHome, "config.toml"),
      [
        'model_provider = "fake"',
        "[model_providers.fake]",
        'name = "fake"',
        `base_url = "${fake.url}/v1"`,
        'env_key = "FAKE_OPENAI_KEY"',
        'wire_api = "responses"',
        "[analytics]",
        "enabled = false",
        "[features]",
        "plugins = false",
        "",
      ].join("\n"),
    );
    // Codex's own sandbox cannot start with CODEX_HOME under the temp dir; Polydev's sandbox is the boundary.
    return runCli(
      bin ?? "codex",
      [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        ...extraArgs,
        prompt,
      ],
      dirs.work,
      { ...baseEnv(dirs.home), CODEX_HOME: codexHome, FAKE_OPENAI_KEY: PLACEHOLDER_KEY },
    );
  };

  it("completes a text turn", { timeout: CLI_TIMEOUT_MS }, async (context) => {
    context.skip(!bin, missingReason("codex"));
    fake.setScript({ openai: [{ text: "pong from the fake" }] });
    const run = await withRunDirs((dirs) => runCodex("say pong", [], dirs));

    expectSuccess(run);
    expect(run.events[0]).toMatchObject({ type: "thread.started" });
    expect(run.events).toContainEqual({
      type: "item.completed",
      item: expect.objectContaining({ type: "agent_message", text: "pong from the fake" }),
    });
    expect(run.events.at(-1)).toMatchObject({ type: "turn.completed", usage: expect.any(Object) });
    const requests = modelRequests("openai");
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      path: "/v1/responses",
      headers: { authorization: `Bearer ${PLACEHOLDER_KEY}` },
      body: { stream: true },
    });
    expect(JSON.stringify(dig(requests[0]?.body, "input"))).toContain("say pong");
  });

  // Codex offers `exec_command` directly for models it has no metadata for, and only a freeform
  // JavaScript `exec` tool (code mode) for the models it knows, its default among them.
  for (const [label, modelArgs, callType] of [
    ["its default model (code mode)", [], "custom_tool_call"],
    ["an unknown model (exec_command)", ["-m", "polydev-fake-model"], "function_call"],
  ] as const) {
    it(`runs a scripted shell call that creates a file with ${label}`, {
      timeout: CLI_TIMEOUT_MS,
    }, async (context) => {
      context.skip(!bin, missingReason("codex"));
      fake.setScript({
        openai: [{ toolCall: { command: "echo made by codex > made.txt" } }, { text: "file made" }],
      });
      const { run, content } = await withRunDirs(async (dirs) => {
        const run = await runCodex("make the file", [...modelArgs], dirs);
        return { run, content: await readFile(join(dirs.work, "made.txt"), "utf8").catch(() => undefined) };
      });

      expectSuccess(run);
      expect(content).toBe("made by codex\n");
      expect(run.events).toContainEqual({
        type: "item.completed",
        item: expect.objectContaining({ type: "command_execution", exit_code: 0, status: "completed" }),
      });
      expect(run.events).toContainEqual({
        type: "item.completed",
        item: expect.objectContaining({ type: "agent_message", text: "file made" }),
      });
      const requests = modelRequests("openai");
      expect(requests).toHaveLength(2);
      const followUp = JSON.stringify(requests[1]?.body);
      expect(followUp).toContain(`"type":"${callType}"`);
      expect(followUp).toContain(`"type":"${callType}_output"`);
    });
  }
});

describe("Gemini CLI against the fake", async () => {
  const bin = await findCli("gemini");

  /** Without `model` the CLI routes: a structured-output call picks the model first. */
  const runGemini = async (prompt: string, dirs: { home: string; work: string }, model?: string) => {
    await mkdir(join(dirs.home, ".gemini"));
    // With a custom base URL, headless mode accepts the API key only when settings select it.
    await writeFile(
      join(dirs.home, ".gemini", "settings.json"),
      JSON.stringify({
        security: { auth: { selectedType: "gemini-api-key" } },
        privacy: { usageStatisticsEnabled: false },
      }),
    );
    return runCli(
      bin ?? "gemini",
      [
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--skip-trust",
        "--yolo",
        ...(model ? ["-m", model] : []),
      ],
      dirs.work,
      {
        ...baseEnv(dirs.home),
        GOOGLE_GEMINI_BASE_URL: fake.url,
        GEMINI_API_KEY: PLACEHOLDER_KEY,
        GEMINI_CLI_NO_RELAUNCH: "true",
      },
    );
  };

  const assistantText = (run: CliRun) =>
    run.events
      .filter((event) => event.type === "message" && event.role === "assistant")
      .map((event) => String(event.content))
      .join("");

  it("completes a text turn", { timeout: CLI_TIMEOUT_MS }, async (context) => {
    context.skip(!bin, missingReason("gemini"));
    fake.setScript({ gemini: [{ text: "pong from the fake" }] });
    const run = await withRunDirs((dirs) => runGemini("say pong", dirs, "gemini-2.5-flash"));

    expectSuccess(run);
    expect(run.events[0]).toMatchObject({ type: "init", model: "gemini-2.5-flash" });
    expect(assistantText(run)).toBe("pong from the fake");
    expect(run.events.at(-1)).toMatchObject({ type: "result", status: "success" });
    const requests = modelRequests("gemini");
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
      query: { alt: "sse" },
      headers: { "x-goog-api-key": PLACEHOLDER_KEY },
    });
    expect(JSON.stringify(dig(requests[0]?.body, "contents"))).toContain("say pong");
  });

  it("completes a text turn with the CLI's model routing (no -m)", {
    timeout: CLI_TIMEOUT_MS,
  }, async (context) => {
    context.skip(!bin, missingReason("gemini"));
    fake.setScript({ gemini: [{ text: "pong from the fake" }] });
    const run = await withRunDirs((dirs) => runGemini("say pong", dirs));

    expectSuccess(run);
    expect(assistantText(run)).toBe("pong from the fake");
    const requests = modelRequests("gemini");
    expect(requests.map((request) => request.path.split(":")[1])).toEqual([
      "generateContent",
      "streamGenerateContent",
    ]);
    expect(dig(requests[0]?.body, "generationConfig", "responseMimeType")).toBe("application/json");
  });

  it("runs a scripted run_shell_command call that creates a file", {
    timeout: CLI_TIMEOUT_MS,
  }, async (context) => {
    context.skip(!bin, missingReason("gemini"));
    fake.setScript({
      gemini: [{ toolCall: { command: "echo made by gemini > made.txt" } }, { text: "file made" }],
    });
    const { run, content } = await withRunDirs(async (dirs) => {
      const run = await runGemini("make the file", dirs, "gemini-2.5-flash");
      return { run, content: await readFile(join(dirs.work, "made.txt"), "utf8").catch(() => undefined) };
    });

    expectSuccess(run);
    expect(content).toBe("made by gemini\n");
    expect(run.events).toContainEqual(
      expect.objectContaining({ type: "tool_use", tool_name: "run_shell_command" }),
    );
    expect(run.events).toContainEqual(expect.objectContaining({ type: "tool_result", status: "success" }));
    expect(assistantText(run)).toBe("file made");
    const requests = modelRequests("gemini");
    expect(requests).toHaveLength(2);
    expect(JSON.stringify(requests[1]?.body)).toContain('"functionResponse"');
  });
});
