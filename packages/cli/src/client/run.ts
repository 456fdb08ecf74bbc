/**
 * `polydev run`: an agent (or several side by side) on a prompt, followed live. The agent's text
 * goes to stdout; tool calls, results and the final status go to stderr, so `> answer.txt` keeps
 * only the answer.
 */
import type { CreateRun, Polydev, Run, RunEvent } from "@polydev/sdk";
import { connect } from "./config.js";
import { EXIT_FAILED, EXIT_OK, parseCommand, readStdin, runCommand, UsageError, withSpinner } from "./io.js";

export const RUN_HELP = `Usage: polydev run [options] --agent AGENT PROMPT...

Runs an agent on the prompt in a sandbox and streams what it does. Several agents
(--agent repeated, or --agents a,b) run the same prompt side by side; their lines are prefixed.
Without a PROMPT argument the prompt is read from stdin. Ctrl-C cancels the run on the server.
Exits 0 when every run succeeded, 1 otherwise.

Agents: claude, codex, gemini, builtin (Polydev's own loop over the provider API)

Options:
  --agent AGENT      the agent (repeatable)
  --agents A,B       several agents at once
  --sandbox ID       run in this sandbox (default: your default sandbox, created if needed)
  --model MODEL      the model to ask for
  --cwd DIR          working directory, relative to the home
  --project DIR      a project folder (a git repository, e.g. projects/app): the run's
                     changes are recorded (polydev run changes RUN_ID)
  --check CMD        run in the agent's copy when it ends (e.g. "npm test")
  --timeout-ms N     give up after this long (default 30 min)
  --max-turns N      stop after this many agent turns
  --json             print every event as one JSON line on stdout instead

Example:
  polydev run --agent claude "add a README that explains the build"

See also: polydev run changes RUN_ID (what a run in a project changed)
          polydev run keep RUN_ID [--push] [--pr TITLE] (keep a run's change in its project)
`;

const AGENTS = ["claude", "codex", "gemini", "builtin"] as const;
type Agent = (typeof AGENTS)[number];

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv[0] === "changes") return (await import("./run-changes.js")).runChanges(argv.slice(1), env);
  if (argv[0] === "keep") return (await import("./run-keep.js")).runKeep(argv.slice(1), env);
  return runCommand("polydev run", async () => {
    const parsed = parseCommand(
      argv,
      {
        agent: { type: "string", multiple: true, short: "a" },
        agents: { type: "string" },
        sandbox: { type: "string" },
        model: { type: "string" },
        cwd: { type: "string" },
        project: { type: "string" },
        check: { type: "string" },
        "timeout-ms": { type: "string" },
        "max-turns": { type: "string" },
        json: { type: "boolean" },
      },
      RUN_HELP,
    );
    if (!parsed) return EXIT_OK;
    const { values, positionals } = parsed;
    const agents = [
      ...(values.agent ?? []),
      ...(values.agents ?? "")
        .split(",")
        .map((a) => a.trim())
        .filter(Boolean),
    ];
    if (agents.length === 0) throw new UsageError(`which agent? --agent ${AGENTS.join("|")}`);
    const unknown = agents.find((a) => !(AGENTS as readonly string[]).includes(a));
    if (unknown) throw new UsageError(`unknown agent "${unknown}"; choose from ${AGENTS.join(", ")}`);
    let prompt = positionals.join(" ").trim();
    if (!prompt && !process.stdin.isTTY) prompt = (await readStdin()).trim();
    if (!prompt) throw new UsageError('what should the agent do? polydev run --agent claude "PROMPT"');

    const body: CreateRun = {
      prompt,
      ...(agents.length === 1 ? { agent: agents[0] as Agent } : { agents: agents as Agent[] }),
      ...(values.sandbox !== undefined ? { sandboxId: values.sandbox } : {}),
      ...(values.model !== undefined ? { model: values.model } : {}),
      ...(values.cwd !== undefined ? { cwd: values.cwd } : {}),
      ...(values.project !== undefined ? { project: values.project } : {}),
      ...(values.check !== undefined ? { check: values.check } : {}),
      ...(values["timeout-ms"] !== undefined
        ? { timeoutMs: wholeNumber("--timeout-ms", values["timeout-ms"]) }
        : {}),
      ...(values["max-turns"] !== undefined
        ? { maxTurns: wholeNumber("--max-turns", values["max-turns"]) }
        : {}),
    };
    const { polydev } = await connect(env);
    const created = await withSpinner("Starting the run", () => polydev.runs.create(body));
    const runs = "runs" in created ? created.runs : [created];
    const output = new RunOutput(values.json === true, runs.length > 1);

    let cancelling = false;
    const onInterrupt = (): void => {
      if (cancelling) process.exit(130);
      cancelling = true;
      process.stderr.write("\nCancelling (Ctrl-C again to leave without waiting)…\n");
      for (const r of runs) polydev.runs.cancel(r.id).catch(() => undefined);
    };
    process.on("SIGINT", onInterrupt);
    try {
      const finals = await Promise.all(runs.map((r) => follow(polydev, r, output)));
      return finals.every((state) => state === "succeeded") ? EXIT_OK : EXIT_FAILED;
    } finally {
      process.off("SIGINT", onInterrupt);
    }
  });
}

async function follow(polydev: Polydev, started: Run, output: RunOutput): Promise<Run["state"]> {
  for await (const event of polydev.runs.events(started.id)) output.event(started, event);
  const ended = await polydev.runs.get(started.id);
  output.final(ended);
  return ended.state;
}

/** Renders events: as JSON lines, or readable (text as it streams, one short line per tool step). */
class RunOutput {
  /** Text not yet ended by a newline, per run, when lines carry a prefix. */
  private readonly partial = new Map<string, string>();
  private readonly color = process.stderr.isTTY === true;

  constructor(
    private readonly json: boolean,
    private readonly prefixed: boolean,
  ) {}

  event(run: Run, event: RunEvent): void {
    if (this.json) {
      process.stdout.write(`${JSON.stringify({ runId: run.id, agent: run.agent, ...event })}\n`);
      return;
    }
    switch (event.type) {
      case "text":
        this.text(run, String(event.delta ?? ""));
        return;
      case "tool_call":
        this.note(run, `→ ${String(event.name)} ${clip(compactJson(event.input), 100)}`);
        return;
      case "tool_result":
        this.note(
          run,
          `${event.isError ? "✗" : "←"} ${clip(firstLine(String(event.output ?? "")) || "(no output)", 100)}`,
        );
        return;
      case "error":
        this.note(run, `! ${String(event.message)}`);
        return;
      case "status":
        if (event.state === "running") this.note(run, `· ${run.agent} is working in ${run.sandboxId}`);
        return;
      default:
        return;
    }
  }

  final(run: Run): void {
    if (this.json) return;
    this.endText(run);
    const tokens = `${run.usage.inputTokens} in / ${run.usage.outputTokens} out tokens`;
    const seconds =
      run.startedAt && run.endedAt
        ? ` in ${((Date.parse(run.endedAt) - Date.parse(run.startedAt)) / 1000).toFixed(1)}s`
        : "";
    const mark = run.state === "succeeded" ? "✓" : "✗";
    const reason = run.state !== "succeeded" && run.exitReason ? `: ${run.exitReason}` : "";
    this.note(run, `${mark} ${run.state}${reason}${seconds} (${tokens}) · run ${run.id}`);
  }

  private text(run: Run, delta: string): void {
    if (!this.prefixed) {
      process.stdout.write(delta);
      this.partial.set(run.id, lastLine(`${this.partial.get(run.id) ?? ""}${delta}`));
      return;
    }
    const lines = `${this.partial.get(run.id) ?? ""}${delta}`.split("\n");
    this.partial.set(run.id, lines.pop() ?? "");
    for (const line of lines) process.stdout.write(`[${run.agent}] ${line}\n`);
  }

  /** Ends a half-written text line so a note does not glue onto it. */
  private endText(run: Run): void {
    const pending = this.partial.get(run.id);
    if (!pending) return;
    process.stdout.write(this.prefixed ? `[${run.agent}] ${pending}\n` : "\n");
    this.partial.set(run.id, "");
  }

  private note(run: Run, line: string): void {
    this.endText(run);
    const text = this.prefixed ? `[${run.agent}] ${line}` : line;
    process.stderr.write(this.color ? `\u001b[2m${text}\u001b[22m\n` : `${text}\n`);
  }
}

function compactJson(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "object" && value !== null && !Array.isArray(value))
    return Object.entries(value)
      .map(([key, v]) => `${key}=${typeof v === "string" ? JSON.stringify(firstLine(v)) : JSON.stringify(v)}`)
      .join(" ");
  return JSON.stringify(value);
}

function firstLine(text: string): string {
  const trimmed = text.trim();
  const newline = trimmed.indexOf("\n");
  return newline < 0 ? trimmed : `${trimmed.slice(0, newline)} …`;
}

function lastLine(text: string): string {
  return text.slice(text.lastIndexOf("\n") + 1);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function wholeNumber(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new UsageError(`${name} takes a whole number (got "${text}")`);
  return value;
}
