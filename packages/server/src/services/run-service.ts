/**
 * Runs: an agent CLI working on a prompt inside the user's sandbox, its output turned into the
 * normalized event vocabulary. Every event is stored with a sequence number before it is
 * published, so a client that reconnects with Last-Event-ID misses nothing.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { posix } from "node:path";
import { Readable } from "node:stream";
import type {
  AgentConnection,
  EgressPolicy,
  ExecProcess,
  RunAgent,
  RunEvent,
  RunEventBody,
  RunRecord,
  RunState,
  SandboxRecord,
  Store,
  UsageEntry,
} from "@polydev/core";
import { FINAL_RUN_STATES, PolydevError } from "@polydev/core";
import type { GatewayProvider } from "@polydev/gateway";
import type { AgentRunner, McpServerSpec } from "@polydev/runners";
import {
  anthropicLoop,
  geminiLoop,
  McpTools,
  openaiLoop,
  SandboxTools,
  withMcpServers,
} from "@polydev/runners";
import type { Logger } from "pino";
import { boundedLines } from "./bounded-lines.js";
import type { CredentialService } from "./credential-service.js";
import type { GatewayHub } from "./gateway-hub.js";
import { collectChanges, defaultCheck, headCommit, listProjects } from "./project-service.js";
import { acceptSessionId, encodeHistory, firstTurn, nextTurn, type Turn } from "./run-turns.js";
import type { SandboxService } from "./sandbox-service.js";

export interface StartRunsInput {
  agents: RunAgent[];
  prompt: string;
  sandboxId?: string | undefined;
  model?: string | undefined;
  cwd?: string | undefined;
  timeoutMs: number;
  maxTurns?: number | undefined;
  /**
   * A command run before the agent, in the run's working directory ("npm ci"); with `network`,
   * an allow-list sandbox reaches what it adds for as long as the command runs ("setup online,
   * agent restricted"), and the agent then runs under the sandbox's own rules.
   */
  setup?: RunSetup | undefined;
  /** A folder in the sandbox holding a git repository; its changes are recorded when the run ends. */
  project?: string | undefined;
  /** A command run in the agent's copy when the run ends ("npm test"); default: the project's own. */
  check?: string | undefined;
  /** Which of the user's MCP servers the agents get: all (undefined), none (false), or those named. */
  mcpServers?: false | string[] | undefined;
}

/** The user's MCP servers a run gets, secrets opened (see mcp-servers.ts). */
export type McpServersForRun = (
  userId: string,
  selection: false | string[] | undefined,
) => Promise<McpServerSpec[]>;

/** What a run in a project needs to record its changes when it ends. */
interface ProjectRun {
  project: string;
  /** The sandbox holding the original project (a group's runs may work in forks of it). */
  projectSandboxId: string;
  check: string | undefined;
  baseCommit: string | undefined;
  recorded: boolean;
}

/** How long a run's check may take. */
const CHECK_TIMEOUT_MS = 10 * 60_000;

export interface RunSetup {
  command: string;
  network?: { allow: string[]; deny?: string[] | undefined; presets?: string[] | undefined } | undefined;
}

/** Opens the wider rules of a setup phase; the returned function closes them. */
export type WidenEgress = (sandbox: SandboxRecord, policy: EgressPolicy) => Promise<() => Promise<void>>;

interface Active {
  sandboxId: string;
  process: ExecProcess | undefined;
  cancelled: boolean;
  /** Why the run cannot go on (its sandbox stopped, its connection to it broke): it fails. */
  lost: string | undefined;
  /** The built-in agent's requests and tools stop on this. */
  abort: AbortController;
}

export interface BuiltinAgentDeps {
  credentials: CredentialService;
  upstreams: Record<GatewayProvider, string>;
  recordUsage(entry: UsageEntry): Promise<void>;
}

/** Which provider a built-in run talks to: by model name, else the first credential stored. */
function builtinProvider(model: string | null, stored: string[]): GatewayProvider | undefined {
  if (model?.startsWith("claude")) return "anthropic";
  if (model?.startsWith("gemini")) return "gemini";
  if (model) return "openai";
  return (["anthropic", "openai", "gemini"] as const).find((p) => stored.includes(p));
}

const AGENT_NAMES: Record<RunAgent, string> = {
  claude: "Claude Code",
  codex: "Codex",
  gemini: "The Gemini CLI",
  builtin: "The built-in agent",
};

/** Names the provider (or, for the built-in agent with no credential at all, any of them) and the ways to add one. */
function missingCredential(agent: RunAgent, provider: GatewayProvider | undefined): PolydevError {
  const providers = provider ? [provider] : (["anthropic", "openai", "gemini"] as const);
  const what = provider
    ? `${provider === "gemini" ? "a" : "an"} ${provider} credential`
    : "a credential for anthropic, openai or gemini";
  const example = providers[0] ?? "anthropic";
  return new PolydevError(
    "credential_missing",
    `${AGENT_NAMES[agent]} needs ${what}, and you have none stored. Add an API key with ` +
      `\`polydev creds add ${example}\`, on the dashboard's Credentials page, or PUT /v1/credentials/${example}` +
      (agent === "builtin" ? "" : `; or sign in with \`polydev creds login ${agent}\``),
    { details: { agent, providers: [...providers], addWith: `PUT /v1/credentials/${example}` } },
  );
}

const DEFAULT_MODELS: Record<GatewayProvider, string> = {
  anthropic: "claude-sonnet-4-5",
  openai: "gpt-5",
  gemini: "gemini-2.5-flash",
};

const STDERR_TAIL_BYTES = 4096;
/** A line the agent CLI prints is kept at most this long (its events are JSON lines). */
const MAX_RUN_LINE_BYTES = 1024 * 1024;
/** What one run may store of its events: its output is sandbox-controlled, the database is not. */
const MAX_RUN_EVENT_BYTES = 32 * 1024 * 1024;
/** How long a reader waits for a just-ended run's closing events before its stream ends without them. */
const CLOSING_EVENTS_WAIT_MS = 2_000;
/** How long a sandbox may take to answer a ping before a failed tool counts as a lost sandbox. */
const PING_TIMEOUT_MS = 5_000;

export class RunService {
  private readonly live = new EventEmitter();
  private readonly active = new Map<string, Active>();
  private readonly projectRuns = new Map<string, ProjectRun>();
  /** What the turn under way will leave for the next one; saved before its final state is written. */
  private readonly conversations = new Map<string, { turn: Turn; save: () => Promise<void> }>();
  /** Each starting run's MCP servers, until its config files are written. */
  private readonly runMcpServers = new Map<string, McpServerSpec[]>();
  private mcpServersFor: McpServersForRun = async () => [];

  constructor(
    private readonly store: Store,
    private readonly sandboxes: SandboxService,
    private readonly gateway: GatewayHub,
    private readonly runners: Partial<Record<RunAgent, AgentRunner>>,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly builtin: BuiltinAgentDeps,
    private readonly widenEgress?: WidenEgress,
  ) {
    this.live.setMaxListeners(0);
  }

  useMcpServers(source: McpServersForRun): void {
    this.mcpServersFor = source;
  }

  async start(userId: string, input: StartRunsInput): Promise<RunRecord[]> {
    for (const agent of input.agents) {
      if (agent !== "builtin" && !this.runners[agent]) {
        throw new PolydevError("invalid_request", `agent "${agent}" is not available on this server`);
      }
    }
    // A sandbox that is not the user's is a 404 whatever else is wrong with the request.
    if (input.sandboxId !== undefined) await this.sandboxes.get(userId, input.sandboxId);
    // Before anything starts: an agent without its provider's credential would only fail later,
    // in the CLI's own words (retries, "an issue with the selected model").
    await this.checkCredentials(userId, input.agents, input.model);
    // Resolved before anything starts, so a name the user has no server for is a plain 400.
    const mcpServers = await this.mcpServersFor(userId, input.mcpServers);
    const sandboxId = input.sandboxId ?? (await this.defaultSandbox(userId));
    const { agent: connection, sandbox } = await this.sandboxes.agent(userId, sandboxId);
    if (input.setup?.network && sandbox.network !== "allowlist") {
      throw new PolydevError(
        "conflict",
        `setup.network widens an allow-list sandbox's rules, and sandbox ${sandboxId} has network "${sandbox.network}"; leave setup.network out`,
      );
    }
    const grouped = input.agents.length > 1;
    const project = await this.resolveProject(connection, input, grouped);
    const check = input.check ?? (project ? await defaultCheck(connection, project) : undefined);
    const groupId = grouped ? `grp_${randomBytes(9).toString("base64url")}` : null;
    // A group's agents each work in a fork of the sandbox where the driver forks: every one sees
    // the same files and installed tools, and none sees another's changes. Elsewhere each gets
    // its own working copy (a directory) in the one sandbox.
    const places: { sandbox: SandboxRecord; connection: AgentConnection }[] = [];
    if (grouped && this.sandboxes.features.includes("fork")) {
      const forks = await this.sandboxes.fork(userId, sandbox.id, { count: input.agents.length });
      for (const fork of forks)
        places.push({ sandbox: fork, connection: await this.sandboxes.agentFor(fork) });
    }
    const inForks = places.length > 0;
    const runs: RunRecord[] = [];
    for (const [index, agent] of input.agents.entries()) {
      const id = `run_${randomBytes(9).toString("base64url")}`;
      const cwd = grouped && !inForks ? `runs/${id}` : (input.cwd ?? project ?? ".");
      const place = places[index] ?? { sandbox, connection };
      const run: RunRecord = {
        id,
        userId,
        // The request may name the sandbox by its name; the run keeps its id.
        sandboxId: place.sandbox.id,
        groupId,
        agent,
        prompt: input.prompt,
        model: input.model ?? null,
        cwd,
        state: "queued",
        exitReason: null,
        finalText: null,
        inputTokens: 0,
        outputTokens: 0,
        timeoutMs: input.timeoutMs,
        maxTurns: input.maxTurns ?? null,
        createdAt: this.now(),
        startedAt: null,
        endedAt: null,
      };
      await this.store.runs.insert(run);
      runs.push(run);
    }
    for (const [index, run] of runs.entries()) {
      this.active.set(run.id, {
        sandboxId: run.sandboxId,
        process: undefined,
        cancelled: false,
        lost: undefined,
        abort: new AbortController(),
      });
      const place = places[index] ?? { sandbox, connection };
      // A fork already holds the files: its working directory is the requested one, not a copy.
      const baseCwd = inForks ? undefined : (input.cwd ?? project);
      if (project)
        this.projectRuns.set(run.id, {
          project,
          projectSandboxId: sandbox.id,
          check,
          baseCommit: undefined,
          recorded: false,
        });
      if (mcpServers.length > 0) this.runMcpServers.set(run.id, mcpServers);
      void this.execute(run, place.connection, baseCwd, place.sandbox, input.setup, firstTurn(run)).catch(
        (error: unknown) => {
          this.log.error({ err: error, runId: run.id }, "run failed unexpectedly");
        },
      );
    }
    return runs;
  }

  /**
   * The project a run works on: the one named (which must hold a git repository), else for a
   * group without a cwd the sandbox's only project, so a group never starts in an empty folder.
   */
  private async resolveProject(
    connection: AgentConnection,
    input: StartRunsInput,
    grouped: boolean,
  ): Promise<string | undefined> {
    if (input.project !== undefined) {
      if (input.cwd !== undefined)
        throw new PolydevError(
          "invalid_request",
          "send project or cwd, not both: a run in a project works in it",
        );
      await headCommit(connection, input.project);
      return input.project;
    }
    if (!grouped || input.cwd !== undefined) return undefined;
    const projects = await listProjects(connection);
    if (projects.length > 1)
      throw new PolydevError(
        "project_required",
        `this sandbox has ${projects.length} projects; name one with project (${projects
          .slice(0, 5)
          .map((p) => p.path)
          .join(", ")})`,
      );
    return projects[0]?.path;
  }

  /** What a run changed, as far as it exists: null for a run without a project. */
  async changes(userId: string, id: string) {
    const run = await this.get(userId, id);
    const stored = await this.store.runs.getChanges(run.id);
    if (stored) return stored;
    if (!FINAL_RUN_STATES.includes(run.state as RunState) && this.projectRuns.has(run.id))
      throw new PolydevError("conflict", `run ${id} is ${run.state}: its changes are recorded when it ends`);
    throw new PolydevError("not_found", `run ${id} recorded no changes: only a run with a project does`);
  }

  /**
   * A follow-up: the finished run takes another turn with `prompt`, in the same sandbox and
   * working directory, continuing its agent's session (see run-turns.ts). Answers the run as it
   * now is and the sequence number its new events follow.
   */
  async followUp(
    userId: string,
    id: string,
    prompt: string,
  ): Promise<{ run: RunRecord; turn: number; afterSeq: number }> {
    const run = await this.get(userId, id);
    const conversation = await this.store.runs.getConversation(run.id);
    const turn = nextTurn({
      run,
      sandboxState: (await this.store.sandboxes.get(run.sandboxId))?.state,
      conversation,
      lastSeq: await this.store.runs.lastEventSeq(run.id),
      prompt,
      maxEventBytes: MAX_RUN_EVENT_BYTES,
    });
    // The agent CLI is refused before anything changes, like a new run would be.
    if (run.agent !== "builtin" && !this.runners[run.agent as RunAgent])
      throw new PolydevError("invalid_request", `agent "${run.agent}" is not available on this server`);
    await this.checkCredentials(userId, [run.agent as RunAgent], run.model ?? undefined);
    // Brings a hibernated or stopped sandbox back; one that is gone answers sandbox_not_running.
    const { agent: connection, sandbox } = await this.sandboxes.agent(userId, run.sandboxId);
    // The compare-and-set is the one check that counts: of two follow-ups at once, one wins.
    const running = await this.store.runs.transition(run.id, [...FINAL_RUN_STATES], "running", {
      exitReason: null,
      endedAt: null,
    });
    if (!running)
      throw new PolydevError(
        "run_in_progress",
        `run ${id} took another follow-up a moment ago; wait for it to end`,
        {
          details: { runId: run.id },
        },
      );
    this.active.set(run.id, {
      sandboxId: run.sandboxId,
      process: undefined,
      cancelled: false,
      lost: undefined,
      abort: new AbortController(),
    });
    // The MCP servers the first turn got, those of them still configured (secrets opened anew).
    const mcpNames = conversation?.mcpServers ?? [];
    if (mcpNames.length > 0) {
      const servers = (await this.mcpServersFor(userId, undefined)).filter((s) => mcpNames.includes(s.name));
      if (servers.length > 0) this.runMcpServers.set(run.id, servers);
    }
    // A run in a project records its changes again at the end of the turn, against the commit
    // its first turn started from: the diff shows everything the conversation changed.
    const changes = await this.store.runs.getChanges(run.id);
    if (changes?.baseCommit)
      this.projectRuns.set(run.id, {
        project: changes.project,
        projectSandboxId: changes.projectSandboxId ?? run.sandboxId,
        check: changes.check?.command,
        baseCommit: changes.baseCommit,
        recorded: false,
      });
    void this.execute(running, connection, undefined, sandbox, undefined, turn).catch((error: unknown) => {
      this.log.error({ err: error, runId: run.id }, "follow-up failed unexpectedly");
    });
    return { run: running, turn: turn.number, afterSeq: turn.afterSeq };
  }

  /**
   * A follow-up to every run of a group. Every run must have ended and kept its sandbox before
   * any of them starts, so a group never ends up half answered by a refusal.
   */
  async followUpGroup(
    userId: string,
    groupId: string,
    prompt: string,
  ): Promise<{ run: RunRecord; turn: number; afterSeq: number }[]> {
    const runs = await this.store.runs.listForGroup(userId, groupId);
    if (runs.length === 0) throw new PolydevError("not_found", `group ${groupId} does not exist`);
    for (const run of runs) {
      nextTurn({
        run,
        sandboxState: (await this.store.sandboxes.get(run.sandboxId))?.state,
        conversation: await this.store.runs.getConversation(run.id),
        lastSeq: 0,
        prompt,
        maxEventBytes: MAX_RUN_EVENT_BYTES,
      });
    }
    const started: { run: RunRecord; turn: number; afterSeq: number }[] = [];
    for (const run of runs) started.push(await this.followUp(userId, run.id, prompt));
    return started;
  }

  /**
   * Once per run, before its final state is written: the diff against the commit it started
   * from and the check. A failure here is recorded as the changes' error and never fails the run.
   */
  private async recordChanges(run: RunRecord, connection: AgentConnection): Promise<void> {
    const tracked = this.projectRuns.get(run.id);
    if (!tracked || tracked.recorded) return;
    tracked.recorded = true;
    const empty = {
      runId: run.id,
      project: tracked.project,
      projectSandboxId: tracked.projectSandboxId,
      baseCommit: tracked.baseCommit ?? null,
      files: [],
      filesTruncated: false,
      diff: "",
      diffTruncated: false,
      check: null,
    };
    try {
      const changes =
        tracked.baseCommit === undefined
          ? { ...empty, error: "the run ended before its base commit was read", recordedAt: this.now() }
          : await collectChanges(connection, {
              runId: run.id,
              project: tracked.project,
              projectSandboxId: tracked.projectSandboxId,
              cwd: run.cwd,
              baseCommit: tracked.baseCommit,
              // A cancelled run was asked to stop: its diff is kept, its check is not started.
              check: this.active.get(run.id)?.cancelled ? undefined : tracked.check,
              checkTimeoutMs: Math.min(run.timeoutMs, CHECK_TIMEOUT_MS),
              now: this.now,
            });
      await this.store.runs.putChanges(changes);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await this.store.runs
        .putChanges({ ...empty, error: message.slice(0, 4096), recordedAt: this.now() })
        .catch((stored: unknown) =>
          this.log.error({ err: stored, runId: run.id }, "could not store a run's changes"),
        );
    }
  }

  /**
   * Each agent's provider must have a stored credential (an API key or a login); the first one
   * missing answers `credential_missing`, naming the provider and how to add it.
   */
  private async checkCredentials(
    userId: string,
    agents: RunAgent[],
    model: string | undefined,
  ): Promise<void> {
    const stored = (await this.store.credentials.listForUser(userId)).map((c) => c.provider);
    for (const agent of agents) {
      const provider =
        agent === "builtin" ? builtinProvider(model ?? null, stored) : this.runners[agent]?.provider;
      if (provider !== undefined && stored.includes(provider)) continue;
      throw missingCredential(agent, provider);
    }
  }

  /**
   * A sandbox stopped (destroyed, expired, failed): its runs cannot finish their work, and end
   * as failed now rather than whenever their process or model call notices.
   */
  sandboxEnded(sandboxId: string): void {
    for (const active of this.active.values()) {
      if (active.sandboxId === sandboxId) this.lose(active, "its sandbox was stopped during the run");
    }
  }

  /**
   * A run succeeds only if its sandbox, where its work is, is still there at the end: the server
   * may not have noticed yet that it died (its init was killed a moment ago).
   */
  private async checkSandboxAlive(active: Active): Promise<void> {
    if (active.lost === undefined && !(await this.sandboxes.isAlive(active.sandboxId))) {
      this.lose(active, "its sandbox stopped during the run");
    }
  }

  private lose(active: Active, reason: string): void {
    if (active.lost !== undefined || active.cancelled) return;
    active.lost = reason;
    active.abort.abort();
    try {
      active.process?.kill("SIGKILL");
    } catch {
      // Its channel is gone with the sandbox: nothing is left to kill.
    }
  }

  async get(userId: string, id: string): Promise<RunRecord> {
    const run = await this.store.runs.getForUser(userId, id);
    if (!run) throw new PolydevError("not_found", `run ${id} does not exist`);
    return run;
  }

  async cancel(userId: string, id: string): Promise<RunRecord> {
    const run = await this.get(userId, id);
    if (FINAL_RUN_STATES.includes(run.state as RunState)) return run;
    const active = this.active.get(id);
    if (active) {
      active.cancelled = true;
      active.abort.abort();
      active.process?.kill("SIGKILL");
    }
    if (!active) await this.finish(run, "cancelled", "cancelled by the user", "");
    return this.waitForEnd(userId, id);
  }

  /**
   * Stored events after `afterSeq`, then live ones, until the run ends. A `done` ends a turn, not
   * the stream: a follow-up that starts while a reader is here continues the same stream.
   */
  async *events(userId: string, id: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<RunEvent> {
    await this.get(userId, id);
    let last = afterSeq;
    const pending: RunEvent[] = [];
    let wake: (() => void) | undefined;
    // A run ends when its state is final and its last turn's `done` has been read.
    let lastType = "";
    let closingWaited = false;
    const onEvent = (event: RunEvent): void => {
      pending.push(event);
      wake?.();
    };
    this.live.on(id, onEvent);
    const onAbort = (): void => wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const stored = await this.store.runs.events(id, last, 500);
        for (const row of stored) {
          last = row.seq;
          const event: RunEvent = {
            runId: id,
            seq: row.seq,
            at: row.at,
            body: JSON.parse(row.body) as RunEventBody,
          };
          if (row.raw !== null) event.raw = row.raw;
          lastType = event.body.type;
          closingWaited = false;
          yield event;
        }
        if (stored.length === 500) continue;
        const run = await this.store.runs.get(id);
        if (!run || signal.aborted) return;
        // Live events already read from the store are no news.
        while (pending.length > 0 && (pending[0]?.seq ?? 0) <= last) pending.shift();
        if (FINAL_RUN_STATES.includes(run.state as RunState) && pending.length === 0) {
          // The done event may have landed between the read and the state check.
          if ((await this.store.runs.events(id, last, 1)).length > 0) continue;
          if (lastType === "done" || closingWaited) return;
          // The final state is written just before the closing status and done: wait for them
          // a moment (a run whose events reached their bound stores none).
          closingWaited = true;
          await this.nextEvent(
            () => pending.length > 0,
            (resolve) => (wake = resolve),
            CLOSING_EVENTS_WAIT_MS,
          );
          wake = undefined;
          continue;
        }
        if (pending.length === 0) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
        pending.length = 0;
      }
    } finally {
      this.live.off(id, onEvent);
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Resolves when `arrived()` holds after a wake-up, or after `timeoutMs`, whichever is first. */
  private async nextEvent(
    arrived: () => boolean,
    setWake: (resolve: () => void) => void,
    timeoutMs: number,
  ): Promise<void> {
    if (arrived()) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      setWake(resolve);
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
  }

  /**
   * At start-up: runs the previous server process left running cannot be resumed. Only this
   * node's (`mine` says which sandboxes are): other replicas' runs are running elsewhere.
   */
  async failInterrupted(mine: (sandboxId: string) => Promise<boolean> = async () => true): Promise<number> {
    const stale = await this.store.runs.listByStates(["queued", "running"]);
    let failed = 0;
    for (const run of stale) {
      if (!(await mine(run.sandboxId))) continue;
      await this.finish(run, "failed", "interrupted: the server restarted during the run", "");
      failed += 1;
    }
    return failed;
  }

  /** The queued and running runs in these sandboxes end failed (their node stopped answering). */
  async failRunsIn(sandboxIds: ReadonlySet<string>, reason: string): Promise<number> {
    const stale = (await this.store.runs.listByStates(["queued", "running"])).filter((run) =>
      sandboxIds.has(run.sandboxId),
    );
    for (const run of stale) await this.finish(run, "failed", reason, "");
    return stale.length;
  }

  private async execute(
    run: RunRecord,
    connection: AgentConnection,
    baseCwd: string | undefined,
    sandbox: SandboxRecord,
    setup: RunSetup | undefined,
    turn: Turn,
  ): Promise<void> {
    let seq = turn.afterSeq;
    // This turn's own entries: a follow-up taken the moment this turn ended replaces them, and
    // this turn's clean-up must not remove the new one's.
    const mine = { active: this.active.get(run.id), project: this.projectRuns.get(run.id) };
    // Events are stored strictly one after another, whoever calls: a live reader reads "after
    // the last seq it saw", so a later seq committed before an earlier one would be skipped.
    let previous: Promise<void> = Promise.resolve();
    const emit = (body: RunEventBody, raw?: string): Promise<void> => {
      const next = previous.then(() => storeEvent(body, raw));
      previous = next.catch(() => undefined);
      return next;
    };
    // What one run may store: past the bound, one note says so and the rest is not kept (the
    // run goes on; its final state and usage are still recorded).
    let storedBytes = turn.eventBytes;
    let full = false;
    const storeEvent = async (given: RunEventBody, givenRaw?: string): Promise<void> => {
      if (full) return;
      let body = given;
      let raw = givenRaw;
      const bytes = JSON.stringify(body).length + (raw?.length ?? 0);
      if (storedBytes + bytes > MAX_RUN_EVENT_BYTES) {
        full = true;
        body = {
          type: "error",
          message: `this run's output reached its limit of ${MAX_RUN_EVENT_BYTES} bytes; the rest is not kept`,
        };
        raw = undefined;
      }
      storedBytes += bytes;
      seq += 1;
      const event: RunEvent = {
        runId: run.id,
        seq,
        at: this.now(),
        body,
        ...(raw === undefined ? {} : { raw }),
      };
      await this.store.runs.appendEvent({
        runId: run.id,
        seq,
        at: event.at,
        body: JSON.stringify(body),
        raw: raw ?? null,
      });
      this.live.emit(run.id, event);
    };
    // What this turn leaves for the next: the session the CLI names, the built-in agent's messages.
    const next = { sessionId: turn.sessionId, history: turn.history };
    const mcpServers = (this.runMcpServers.get(run.id) ?? []).map((server) => server.name);
    this.conversations.set(run.id, {
      turn,
      save: () =>
        this.store.runs.putConversation({
          runId: run.id,
          turns: turn.number,
          sessionId: next.sessionId ?? null,
          history: run.agent === "builtin" ? encodeHistory(next.history ?? []) : null,
          eventBytes: storedBytes,
          mcpServers,
          updatedAt: this.now(),
        }),
    });
    if (turn.number === 1) {
      const started = await this.store.runs.transition(run.id, ["queued"], "running", {
        startedAt: this.now(),
      });
      if (!started) {
        // Cancelled before it began: nothing ran, so there is nothing to record.
        this.projectRuns.delete(run.id);
        this.conversations.delete(run.id);
        this.runMcpServers.delete(run.id);
        return;
      }
    } else {
      await emit({ type: "user", prompt: turn.prompt, turn: turn.number });
    }
    await emit({ type: "status", state: "running" });
    let stderrTail = "";
    try {
      // A follow-up works on what the earlier turns left: no fresh copy, no setup again.
      if (turn.number === 1) {
        await this.prepareWorkingCopy(connection, run, baseCwd);
        const tracked = this.projectRuns.get(run.id);
        if (tracked) tracked.baseCommit = await headCommit(connection, run.cwd);
        if (setup) await this.runSetup(run, connection, sandbox, setup, emit);
      }
      if (run.agent === "builtin") {
        await this.executeBuiltin(run, connection, emit, turn, next);
        return;
      }
      const runner = this.runners[run.agent as RunAgent];
      if (!runner) throw new PolydevError("invalid_request", `agent "${run.agent}" is not available`);
      await this.gateway.ensureTunnel(run.sandboxId, connection);
      const invocation = withMcpServers(
        runner.agent,
        runner.invocation({
          prompt: turn.prompt,
          resumeSessionId: turn.sessionId,
          model: run.model ?? undefined,
          maxTurns: run.maxTurns ?? undefined,
          gatewayPort: this.gateway.port,
        }),
        this.runMcpServers.get(run.id) ?? [],
        connection.hello.home ?? "/home/user",
      );
      for (const [path, content] of Object.entries(invocation.files)) {
        await connection.files.write(path, Readable.from([Buffer.from(content)]), { mode: 0o600 });
      }
      const process = await connection.exec({
        argv: invocation.argv,
        cwd: run.cwd,
        env: invocation.env,
        timeoutMs: run.timeoutMs,
      });
      const active = this.active.get(run.id);
      if (active) active.process = process;
      if (active?.cancelled) process.kill("SIGKILL");
      // Agents wait on an open stdin (Codex reads extra input from it): close it at once.
      process.stdin.end();
      process.stderr.on("error", () => undefined);
      process.stderr.on("data", (chunk: Buffer) => {
        stderrTail = (stderrTail + chunk.toString()).slice(-STDERR_TAIL_BYTES);
      });
      const parser = runner.parser();
      let inputTokens = 0;
      let outputTokens = 0;
      process.stdout.on("error", () => undefined);
      // Bounded lines that also end when the stdout is cut short (the sandbox went away).
      for await (const line of boundedLines(process.stdout, MAX_RUN_LINE_BYTES)) {
        const bodies = parser.line(line);
        for (const [index, body] of bodies.entries()) {
          if (body.type === "usage") {
            inputTokens += body.inputTokens;
            outputTokens += body.outputTokens;
          }
          await emit(body, index === 0 ? line : undefined);
        }
      }
      next.sessionId = acceptSessionId(parser.sessionId?.()) ?? next.sessionId;
      const exit = await process.exited;
      await this.recordChanges(run, connection);
      const ending = this.active.get(run.id);
      if (ending && exit.exitCode === 0) await this.checkSandboxAlive(ending);
      const cancelled = ending?.cancelled === true;
      const lost = ending?.lost;
      const state: RunState = cancelled
        ? "cancelled"
        : lost !== undefined
          ? "failed"
          : exit.timedOut
            ? "timed_out"
            : exit.exitCode === 0
              ? "succeeded"
              : "failed";
      const reason =
        state === "succeeded"
          ? "completed"
          : state === "cancelled"
            ? "cancelled by the user"
            : lost !== undefined
              ? lost
              : state === "timed_out"
                ? `stopped after its timeout of ${run.timeoutMs} ms`
                : `the ${run.agent} CLI exited with ${exit.exitCode ?? exit.signal}: ${stderrTail.trim().split("\n").slice(-3).join(" / ")}`;
      await this.store.runs.transition(run.id, ["running"], state, {
        inputTokens: turn.tokens.input + inputTokens,
        outputTokens: turn.tokens.output + outputTokens,
      });
      if (state === "failed" && stderrTail.trim()) await emit({ type: "error", message: reason });
      await this.finish(run, state, reason, parser.finalText(), emit);
    } catch (error) {
      const lost = this.active.get(run.id)?.lost;
      const message = lost ?? (error instanceof Error ? error.message : String(error));
      if (lost === undefined) await this.recordChanges(run, connection);
      await emit({ type: "error", message });
      await this.finish(run, "failed", message, "", emit);
    } finally {
      if (this.active.get(run.id) === mine.active) this.active.delete(run.id);
      if (this.projectRuns.get(run.id) === mine.project) this.projectRuns.delete(run.id);
      if (this.conversations.get(run.id)?.turn === turn) this.conversations.delete(run.id);
      this.runMcpServers.delete(run.id);
    }
  }

  /**
   * The setup command, its output as the run's text, under the wider rules when it names some.
   * A failing setup fails the run (its reason starts with "setup_failed").
   */
  private async runSetup(
    run: RunRecord,
    connection: AgentConnection,
    sandbox: SandboxRecord,
    setup: RunSetup,
    emit: (body: RunEventBody) => Promise<void>,
  ): Promise<void> {
    if (setup.network && !this.widenEgress) {
      throw new PolydevError("feature_unavailable", "this server cannot widen a sandbox's egress rules");
    }
    const close =
      setup.network && this.widenEgress
        ? await this.widenEgress(sandbox, {
            allow: setup.network.allow,
            deny: setup.network.deny ?? [],
            presets: setup.network.presets ?? [],
          })
        : undefined;
    try {
      await emit({ type: "status", state: "running", message: `setup: ${setup.command}` });
      const process = await connection.exec({
        argv: ["/bin/sh", "-c", setup.command],
        cwd: run.cwd,
        env: {},
        timeoutMs: run.timeoutMs,
      });
      const active = this.active.get(run.id);
      if (active) active.process = process;
      if (active?.cancelled) process.kill("SIGKILL");
      process.stdin.end();
      process.stdout.on("error", () => undefined);
      process.stderr.on("error", () => undefined);
      const lines = async (stream: Readable): Promise<void> => {
        for await (const line of boundedLines(stream, MAX_RUN_LINE_BYTES))
          await emit({ type: "text", delta: `${line}\n` });
      };
      await Promise.all([lines(process.stdout), lines(process.stderr)]);
      const exit = await process.exited;
      if (active) active.process = undefined;
      if (exit.exitCode !== 0) {
        throw new PolydevError(
          "command_failed",
          `setup_failed: the setup command exited with ${exit.timedOut ? "a timeout" : (exit.exitCode ?? exit.signal)}`,
        );
      }
    } finally {
      await close?.();
    }
  }

  /**
   * Polydev's own agent loop: it runs here in the server with the owner's credential (which so
   * never enters the sandbox) and acts in the sandbox only through its tools.
   */
  private async executeBuiltin(
    run: RunRecord,
    connection: AgentConnection,
    emit: (body: RunEventBody, raw?: string) => Promise<void>,
    turn: Turn,
    next: { history: unknown[] | undefined },
  ): Promise<void> {
    const active = this.active.get(run.id);
    const abort = active?.abort ?? new AbortController();
    const stored = (await this.store.credentials.listForUser(run.userId)).map((c) => c.provider);
    const provider = builtinProvider(run.model, stored);
    const credential = provider
      ? await this.builtin.credentials.credentialFor(run.userId, provider)
      : undefined;
    if (!provider || !credential) {
      throw new PolydevError(
        "invalid_request",
        "the built-in agent needs a stored credential: PUT /v1/credentials/{provider}",
      );
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, run.timeoutMs);
    const model = run.model ?? DEFAULT_MODELS[provider];
    const base = this.builtin.upstreams[provider];
    const loop = provider === "anthropic" ? anthropicLoop : provider === "openai" ? openaiLoop : geminiLoop;
    // Started inside the sandbox for this turn (a follow-up starts them again) and killed when
    // it ends; one that cannot start is reported and left out, the run goes on without it.
    let mcp = McpTools.none();
    try {
      mcp = await McpTools.connect(connection, this.runMcpServers.get(run.id) ?? [], {
        cwd: run.cwd,
        signal: abort.signal,
        onProblem: (message) => emit({ type: "error", message }),
      });
      const result = await loop({
        model,
        prompt: turn.prompt,
        history: turn.history,
        maxTurns: run.maxTurns ?? 50,
        baseUrl: provider === "openai" ? `${base.replace(/\/$/, "")}/v1` : base,
        secret: credential.secret,
        oauth: credential.kind === "oauth",
        tools: new RunTools(
          connection,
          run.cwd,
          () => {
            if (active) this.lose(active, "the connection to its sandbox broke during the run");
          },
          active?.abort.signal,
          mcp,
        ),
        emit,
        signal: abort.signal,
      });
      next.history = result.history;
      await this.recordChanges(run, connection);
      await this.builtin.recordUsage({
        userId: run.userId,
        sandboxId: run.sandboxId,
        provider,
        model,
        inputTokens: result.inputTokens,
        outputTokens: result.outputTokens,
        status: 200,
        at: this.now(),
      });
      // The loop can finish on its own after the sandbox went away (the model gave up on tools
      // that failed, or took a killed command's output as an answer): that is no success.
      if (active) await this.checkSandboxAlive(active);
      if (active?.lost !== undefined) throw new PolydevError("sandbox_not_running", active.lost);
      await this.store.runs.transition(run.id, ["running"], "succeeded", {
        inputTokens: turn.tokens.input + result.inputTokens,
        outputTokens: turn.tokens.output + result.outputTokens,
      });
      await this.finish(run, "succeeded", result.exitReason, result.finalText, emit);
    } catch (error) {
      if (!abort.signal.aborted || active?.lost !== undefined) throw error;
      await this.recordChanges(run, connection);
      const state: RunState = timedOut ? "timed_out" : "cancelled";
      const reason = timedOut ? `stopped after its timeout of ${run.timeoutMs} ms` : "cancelled by the user";
      await this.store.runs.transition(run.id, ["running"], state, {});
      await this.finish(run, state, reason, "", emit);
    } finally {
      clearTimeout(timer);
      await mcp.close();
    }
  }

  private async prepareWorkingCopy(
    connection: AgentConnection,
    run: RunRecord,
    baseCwd: string | undefined,
  ): Promise<void> {
    const argv =
      run.groupId && baseCwd
        ? [
            "/bin/sh",
            "-c",
            'mkdir -p "$(dirname "$2")" && cp -a "$1/." "$2/" 2>/dev/null || mkdir -p "$2"',
            "sh",
            baseCwd,
            run.cwd,
          ]
        : ["mkdir", "-p", posix.normalize(run.cwd)];
    const prepare = await connection.exec({ argv, timeoutMs: 60_000 });
    prepare.stdin.end();
    // Read and dropped; a stream cut short (the sandbox went away) shows in the exit instead.
    prepare.stdout.on("error", () => undefined).resume();
    prepare.stderr.on("error", () => undefined).resume();
    const exit = await prepare.exited;
    if (exit.exitCode !== 0)
      throw new PolydevError("invalid_request", `could not prepare the working directory ${run.cwd}`);
  }

  private async finish(
    run: RunRecord,
    state: RunState,
    reason: string,
    finalText: string,
    emit?: (body: RunEventBody) => Promise<void>,
  ): Promise<void> {
    // Before the state says "ended": a follow-up sent the moment it does finds this turn's session.
    await this.conversations
      .get(run.id)
      ?.save()
      .catch((error: unknown) =>
        this.log.error({ err: error, runId: run.id }, "could not store a run's conversation"),
      );
    await this.store.runs.transition(run.id, ["queued", "running", state], state, {
      exitReason: reason,
      finalText,
      endedAt: this.now(),
    });
    if (emit) {
      await emit({ type: "status", state, message: reason });
      await emit({ type: "done", finalText, exitReason: reason });
    } else {
      // No process ever ran: write the closing events directly, after any that exist.
      const [last] = (await this.store.runs.events(run.id, 0, 100_000)).slice(-1);
      let seq = last?.seq ?? 0;
      for (const body of [
        { type: "status", state, message: reason },
        { type: "done", finalText, exitReason: reason },
      ] satisfies RunEventBody[]) {
        seq += 1;
        await this.store.runs.appendEvent({
          runId: run.id,
          seq,
          at: this.now(),
          body: JSON.stringify(body),
          raw: null,
        });
        this.live.emit(run.id, { runId: run.id, seq, at: this.now(), body });
      }
    }
  }

  private async waitForEnd(userId: string, id: string): Promise<RunRecord> {
    const deadline = this.now() + 10_000;
    for (;;) {
      const run = await this.get(userId, id);
      if (FINAL_RUN_STATES.includes(run.state as RunState) || this.now() > deadline) return run;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** The user's default sandbox: reused while it runs, created when there is none. */
  private async defaultSandbox(userId: string): Promise<string> {
    const page = await this.store.sandboxes.listForUser(userId, {
      limit: 100,
      states: ["running", "hibernated", "stopped"],
    });
    const existing = page.items.find((s) => s.metadata.purpose === "default");
    if (existing) return existing.id;
    const created = await this.sandboxes.create(userId, { metadata: { purpose: "default" } });
    return created.id;
  }
}

/**
 * The built-in agent's tools, watching the connection they work through: a tool that failed
 * because the sandbox can no longer be reached (its agent connection closed) ends the run as
 * failed, instead of the model carrying on without a sandbox.
 */
class RunTools extends SandboxTools {
  constructor(
    private readonly connection: AgentConnection,
    cwd: string,
    private readonly onLost: () => void,
    signal: AbortSignal | undefined,
    mcp: McpTools,
  ) {
    super(connection, cwd, signal, mcp);
  }

  override async run(name: string, input: Record<string, unknown>): ReturnType<SandboxTools["run"]> {
    const outcome = await super.run(name, input);
    if (outcome.isError) {
      const reachable = await this.connection.ping(AbortSignal.timeout(PING_TIMEOUT_MS)).then(
        () => true,
        () => false,
      );
      if (!reachable) this.onLost();
    }
    return outcome;
  }
}
