/**
 * Run overhead: the same CLI against the same fake provider, once run directly on the host and
 * once as a Polydev run (sandbox, gateway tunnel, event parsing, SSE), measuring time to the
 * first text and to the end. Budget: Polydev adds ≤ 150 ms to time-to-first-text.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeProviders } from "@polydev/fake-providers";
import { startServerProcess } from "./server-process.js";
import type { Summary } from "./stats.js";
import { fmt, summarize } from "./stats.js";

type Agent = "claude" | "codex" | "gemini";

interface Timing {
  firstTextMs: number;
  totalMs: number;
}

/** The CLI run directly: its own HOME, the fake as its provider, stdout read line by line. */
async function direct(agent: Agent, fakeUrl: string): Promise<Timing> {
  const home = await mkdtemp(join("/var/tmp", "bench-home-"));
  try {
    const env: Record<string, string> = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home, LANG: "C.UTF-8" };
    let argv: string[];
    if (agent === "claude") {
      Object.assign(env, {
        ANTHROPIC_BASE_URL: fakeUrl,
        ANTHROPIC_API_KEY: "k",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
        IS_SANDBOX: "1",
      });
      argv = [
        "claude",
        "-p",
        "say hello",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--dangerously-skip-permissions",
      ];
    } else if (agent === "codex") {
      await mkdir(join(home, ".codex"));
      await writeFile(
        join(home, ".codex/config.toml"),
        `model_provider = "f"\n[model_providers.f]\nname = "f"\nbase_url = "${fakeUrl}/v1"\nenv_key = "K"\nwire_api = "responses"\n[analytics]\nenabled = false\n[features]\nplugins = false\n`,
      );
      Object.assign(env, { K: "k" });
      argv = [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "say hello",
      ];
    } else {
      await mkdir(join(home, ".gemini"));
      await writeFile(
        join(home, ".gemini/settings.json"),
        '{"security":{"auth":{"selectedType":"gemini-api-key"}},"privacy":{"usageStatisticsEnabled":false}}',
      );
      Object.assign(env, {
        GOOGLE_GEMINI_BASE_URL: fakeUrl,
        GEMINI_API_KEY: "k",
        GEMINI_CLI_NO_RELAUNCH: "true",
      });
      argv = [
        "gemini",
        "-p",
        "say hello",
        "--output-format",
        "stream-json",
        "--skip-trust",
        "--yolo",
        "-m",
        "gemini-2.5-flash",
      ];
    }
    const started = performance.now();
    const [file, ...args] = argv;
    const child = spawn(file ?? "", args, { env, cwd: home, stdio: ["ignore", "pipe", "ignore"] });
    let firstTextMs = Number.NaN;
    let buffered = "";
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      if (Number.isNaN(firstTextMs) && /text_delta|"agent_message"|"role":"assistant"/.test(buffered)) {
        firstTextMs = performance.now() - started;
      }
    });
    await new Promise((resolve) => child.once("close", resolve));
    return { firstTextMs, totalMs: performance.now() - started };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

async function viaPolydev(agent: Agent, url: string, key: string, sandboxId: string): Promise<Timing> {
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  const started = performance.now();
  const created = await fetch(`${url}/v1/runs`, {
    method: "POST",
    headers,
    body: JSON.stringify({ agent, prompt: "say hello", sandboxId }),
  });
  const run = (await created.json()) as { id: string };
  const events = await fetch(`${url}/v1/runs/${run.id}/events`, {
    headers: { authorization: headers.authorization },
  });
  const reader = events.body?.getReader();
  let firstTextMs = Number.NaN;
  let seen = "";
  for (;;) {
    const chunk = await reader?.read();
    if (!chunk || chunk.done) break;
    seen += Buffer.from(chunk.value).toString();
    if (Number.isNaN(firstTextMs) && seen.includes("event: text")) firstTextMs = performance.now() - started;
  }
  return { firstTextMs, totalMs: performance.now() - started };
}

export interface RunBenchRow {
  agent: Agent;
  direct: { firstText: Summary; total: Summary };
  polydev: { firstText: Summary; total: Summary };
}

export async function benchRuns(options: { quick: boolean }): Promise<RunBenchRow[]> {
  const fake = await startFakeProviders();
  const dataDir = await mkdtemp(join(tmpdir(), "polydev-bench-runs-"));
  process.env.POLYDEV_ANTHROPIC_BASE_URL = fake.url;
  process.env.POLYDEV_OPENAI_BASE_URL = fake.url;
  process.env.POLYDEV_GEMINI_BASE_URL = fake.url;
  const server = await startServerProcess(dataDir);
  const rows: RunBenchRow[] = [];
  const headers = { authorization: `Bearer ${server.adminKey}`, "content-type": "application/json" };
  let sandboxId: string | undefined;
  try {
    for (const provider of ["anthropic", "openai", "gemini"]) {
      await fetch(`${server.url}/v1/credentials/${provider}`, {
        method: "PUT",
        headers,
        body: JSON.stringify({ apiKey: "sk-bench-key" }),
      });
    }
    // The direct runs may use both cores; so may the sandbox, for a like-for-like comparison.
    const created = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers,
      body: JSON.stringify({ cpu: 2 }),
    });
    const id = ((await created.json()) as { id: string }).id;
    sandboxId = id;
    const rounds = options.quick ? 3 : 8;
    for (const agent of ["claude", "codex", "gemini"] as const) {
      await viaPolydev(agent, server.url, server.adminKey, id);
      await direct(agent, fake.url);
      const d: Timing[] = [];
      const p: Timing[] = [];
      for (let i = 0; i < rounds; i++) {
        d.push(await direct(agent, fake.url));
        p.push(await viaPolydev(agent, server.url, server.adminKey, id));
      }
      rows.push({
        agent,
        direct: {
          firstText: summarize(d.map((t) => t.firstTextMs)),
          total: summarize(d.map((t) => t.totalMs)),
        },
        polydev: {
          firstText: summarize(p.map((t) => t.firstTextMs)),
          total: summarize(p.map((t) => t.totalMs)),
        },
      });
    }
  } finally {
    // Sandboxes outlive their server by design: this one goes before its data directory does.
    if (sandboxId !== undefined) {
      await fetch(`${server.url}/v1/sandboxes/${sandboxId}`, { method: "DELETE", headers }).catch(
        () => undefined,
      );
    }
    await server.stop();
    await fake.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return rows;
}

export function runsTable(rows: RunBenchRow[]): string {
  const lines = [
    "| agent | direct first text p50 ms | Polydev first text p50 ms | added p50 ms | ratio | direct total p50 ms | Polydev total p50 ms | budget |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const added = r.polydev.firstText.p50 - r.direct.firstText.p50;
    lines.push(
      `| ${r.agent} | ${fmt(r.direct.firstText.p50)} | ${fmt(r.polydev.firstText.p50)} | ${fmt(added)} | ${(r.polydev.firstText.p50 / r.direct.firstText.p50).toFixed(2)}× | ${fmt(r.direct.total.p50)} | ${fmt(r.polydev.total.p50)} | ≤ 150 ms added |`,
    );
  }
  return lines.join("\n");
}
