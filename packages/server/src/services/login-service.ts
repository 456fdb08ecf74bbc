/**
 * Provider logins made with the provider's own CLI inside the user's sandbox, under a terminal:
 * starting → awaiting_user (URL captured) → completing → completed | failed | timed_out |
 * cancelled. The credential file the CLI writes is read, sealed into the vault, and removed
 * from the sandbox. A login runs on the node that hosts its sandbox: its terminal, sign-in URL
 * and device code live in that server's memory only (the URL and code never reach the
 * database), while its row (store `logins`) tells every replica where it runs and how it ended,
 * so a request reaching another replica is forwarded there (http/forwarding.ts). A server that
 * restarts, or a node that dies, ends its unfinished logins as failed (`endStale`, dead-nodes.ts).
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { Readable } from "node:stream";
import type { AgentConnection, Clock, LoginRecord, LoginRepository, PtyProcess } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Logger } from "pino";
import type { CredentialService } from "./credential-service.js";
import type { LoginFlow, LoginProvider } from "./login-flows.js";
import { findLoginPrompt, findRefusal, stripTerminalCodes } from "./login-flows.js";

export const LOGIN_STATES = [
  "starting",
  "awaiting_user",
  "completing",
  "completed",
  "failed",
  "timed_out",
  "cancelled",
] as const;
export type LoginState = (typeof LOGIN_STATES)[number];
/** A CLI's credential file is JSON of a few KiB; a larger one is refused, not read on. */
const MAX_CREDENTIAL_FILE_BYTES = 64 * 1024;
const FINAL: LoginState[] = ["completed", "failed", "timed_out", "cancelled"];
/** The states of a login whose CLI still runs somewhere. */
export const UNFINISHED_LOGIN_STATES: readonly LoginState[] = ["starting", "awaiting_user", "completing"];
/** Ended logins are kept this long for `GET /v1/logins`, then removed. */
const ENDED_LOGIN_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
/** How many logins `GET /v1/logins` lists (newest first). */
const LISTED_LOGINS = 100;

export interface LoginView {
  id: string;
  provider: LoginProvider;
  sandboxId: string;
  state: LoginState;
  url: string | null;
  userCode: string | null;
  finish: "code" | "callback";
  reason: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Login {
  view: LoginView;
  userId: string;
  flow: LoginFlow;
  agent: AgentConnection;
  pty: PtyProcess | undefined;
  screen: string;
  /** What the CLI printed since the user's code or callback was handed over (bounded). */
  reply: string;
  events: EventEmitter;
  timer: NodeJS.Timeout | undefined;
  /** Destroy this sandbox when the login ends (it was made for the login). */
  ownsSandbox: boolean;
  /** Set the moment an ending begins, so a second cause (the CLI exiting) cannot overtake it. */
  ending: boolean;
  /** Row writes, one after another so an older state never lands after a newer one. */
  saved: Promise<void>;
}

export interface LoginOptions {
  /** How long a CLI may take to print its URL. */
  urlTimeoutMs: number;
  /** How long the whole login may take, user included. */
  totalTimeoutMs: number;
  /** How long the CLI may take to finish after the code was handed over. */
  completeTimeoutMs: number;
}

const SCREEN_LIMIT = 64 * 1024;
/** Enough for a refusal line and what comes with it; older output is dropped. */
const REPLY_LIMIT = 16 * 1024;

/** Where logins are recorded and which node this is. */
export interface LoginRecords {
  repository: LoginRepository;
  node: string;
  clock: Clock;
}

export class LoginService {
  /** The logins whose CLI runs here and has not ended; ended ones are read from their row. */
  private readonly logins = new Map<string, Login>();
  private readonly endListeners: ((userId: string, login: LoginView) => void)[] = [];
  /** The server is stopping: nothing ends from here on (see `detach`). */
  private detached = false;

  constructor(
    private readonly flows: Record<LoginProvider, LoginFlow>,
    private readonly records: LoginRecords,
    private readonly credentials: CredentialService,
    private readonly options: LoginOptions,
    private readonly log: Logger,
    private readonly destroySandbox: (userId: string, sandboxId: string) => Promise<void>,
    /** Told of each credential a login stored (the audit log records it). */
    private readonly onCredentialStored: (stored: {
      userId: string;
      provider: string;
      credentialId: string;
    }) => Promise<void> = async () => {},
  ) {}

  /** Called once per login when it reaches a final state (after its sandbox is cleaned up). */
  onEnded(listener: (userId: string, login: LoginView) => void): void {
    this.endListeners.push(listener);
  }

  async start(
    userId: string,
    provider: LoginProvider,
    sandbox: { id: string; agent: AgentConnection; ownsSandbox: boolean },
  ): Promise<LoginView> {
    // Across replicas: the rows say which logins run anywhere.
    const rows = await this.records.repository.listForUser(userId, LISTED_LOGINS);
    const running = rows.find((row) => row.provider === provider && isUnfinished(row.state));
    if (running) {
      throw new PolydevError(
        "conflict",
        `a ${provider} login is already in progress (${running.id}); finish or cancel it first`,
      );
    }
    const flow = this.flows[provider];
    const now = new Date(this.records.clock.now()).toISOString();
    const login: Login = {
      view: {
        id: `login_${randomBytes(9).toString("base64url")}`,
        provider,
        sandboxId: sandbox.id,
        state: "starting",
        url: null,
        userCode: null,
        finish: flow.finish,
        reason: null,
        createdAt: now,
        updatedAt: now,
      },
      userId,
      flow,
      agent: sandbox.agent,
      pty: undefined,
      screen: "",
      reply: "",
      events: new EventEmitter(),
      timer: undefined,
      ownsSandbox: sandbox.ownsSandbox,
      ending: false,
      saved: Promise.resolve(),
    };
    await this.records.repository.put(this.recordOf(login));
    this.logins.set(login.view.id, login);
    login.timer = setTimeout(
      () => this.endQuietly(login, "timed_out", "the login was not finished in time"),
      this.options.totalTimeoutMs,
    );
    login.timer.unref();
    try {
      for (const [path, content] of Object.entries(flow.files)) {
        await sandbox.agent.files.write(path, Readable.from([Buffer.from(content)]), { mode: 0o600 });
      }
      // A wide terminal keeps long sign-in URLs on one line.
      login.pty = await sandbox.agent.openPty({ argv: flow.argv, cols: 1000, rows: 50, env: flow.env });
    } catch (error) {
      await this.end(login, "failed", `the ${provider} CLI could not start: ${messageOf(error)}`);
      return login.view;
    }
    const pty = login.pty;
    pty.output.on("error", () => undefined);
    pty.output.on("data", (chunk: Buffer) => {
      const text = stripTerminalCodes(chunk.toString());
      login.screen = (login.screen + text).slice(-SCREEN_LIMIT);
      if (login.view.state === "completing") {
        login.reply = (login.reply + text).slice(-REPLY_LIMIT);
        this.checkRefusal(login);
        return;
      }
      if (login.view.state !== "starting") return;
      const prompt = findLoginPrompt(login.screen);
      if (prompt.url) {
        login.view.url = prompt.url;
        login.view.userCode = prompt.userCode ?? null;
        this.setState(login, "awaiting_user");
      }
    });
    // `exited` rejects when the sandbox goes away under the CLI: the login fails, nothing else.
    pty.exited
      .then(
        (exit) => this.onExit(login, exit.exitCode),
        () => this.onExit(login, null),
      )
      .catch((error: unknown) =>
        this.log.warn({ err: error, loginId: login.view.id }, "ending a login failed"),
      );
    await this.waitFor(login, (state) => state !== "starting", this.options.urlTimeoutMs);
    if (login.view.state === "starting") {
      await this.end(login, "failed", `the ${provider} CLI printed no sign-in URL: ${this.tail(login)}`);
    }
    return login.view;
  }

  async get(userId: string, id: string): Promise<LoginView> {
    const login = this.logins.get(id);
    if (login && login.userId === userId) return login.view;
    return this.viewOf(await this.rowOf(userId, id));
  }

  /** The user's logins, newest first: live ones from here with their URL, the rest from rows. */
  async list(userId: string): Promise<LoginView[]> {
    const rows = await this.records.repository.listForUser(userId, LISTED_LOGINS);
    return rows.map((row) => this.logins.get(row.id)?.view ?? this.viewOf(row));
  }

  /** Hands the user's result to the CLI: a pasted code, or the localhost callback relayed inside. */
  async submit(
    userId: string,
    id: string,
    input: { code?: string; callbackUrl?: string },
  ): Promise<LoginView> {
    const login = await this.find(userId, id);
    if (login.view.state !== "awaiting_user") {
      throw new PolydevError(
        "conflict",
        `login ${id} is ${login.view.state}; it takes a code only while awaiting_user`,
      );
    }
    if (login.flow.finish === "code") {
      if (!input.code)
        throw new PolydevError("invalid_request", `the ${login.view.provider} login takes { code }`);
      this.setState(login, "completing");
      login.pty?.write(`${input.code}\r`);
    } else {
      if (!input.callbackUrl) {
        throw new PolydevError("invalid_request", `the ${login.view.provider} login takes { callbackUrl }`);
      }
      const url = parseCallback(input.callbackUrl);
      this.setState(login, "completing");
      const relay = await login.agent.exec({
        argv: ["curl", "-sS", "-m", "20", "-o", "/dev/null", url],
        timeoutMs: 30_000,
      });
      relay.stdin.end();
      // Read and dropped; a stream cut short (the sandbox went away) is no one's error here.
      relay.stdout.on("error", () => undefined).resume();
      relay.stderr.on("error", () => undefined).resume();
      await relay.exited;
    }
    await this.waitFor(login, (state) => FINAL.includes(state), this.options.completeTimeoutMs);
    // The state moves on in event handlers, which the compiler cannot see from here.
    if ((login.view.state as LoginState) === "completing") {
      await this.end(
        login,
        "timed_out",
        `the ${login.view.provider} CLI did not finish: ${this.tail(login)}`,
      );
    }
    return login.view;
  }

  async cancel(userId: string, id: string): Promise<LoginView> {
    const local = this.logins.get(id);
    if (local && local.userId === userId) {
      await this.end(local, "cancelled", "cancelled by the user");
      return local.view;
    }
    // Not running here: ended already, or its server lost it (restarted or gone).
    const row = await this.rowOf(userId, id);
    if (!isUnfinished(row.state)) return this.viewOf(row);
    const cancelled = {
      ...row,
      state: "cancelled",
      reason: "cancelled by the user",
      updatedAt: this.records.clock.now(),
    };
    await this.records.repository.put(cancelled);
    return this.viewOf(cancelled);
  }

  /** State changes as they happen (the current state first). Ends after a final state. */
  async *events(userId: string, id: string, signal: AbortSignal): AsyncGenerator<LoginView> {
    const login = this.logins.get(id);
    if (!login || login.userId !== userId) {
      // Ended (or lost with its server): its last state is all there is.
      yield this.viewOf(await this.rowOf(userId, id));
      return;
    }
    const queue: LoginView[] = [{ ...login.view }];
    let wake: (() => void) | undefined;
    const onChange = (view: LoginView): void => {
      queue.push({ ...view });
      wake?.();
    };
    login.events.on("change", onChange);
    signal.addEventListener("abort", () => wake?.(), { once: true });
    try {
      while (!signal.aborted) {
        const next = queue.shift();
        if (next) {
          yield next;
          if (FINAL.includes(next.state)) return;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      login.events.off("change", onChange);
    }
  }

  /** Throws `not_found` unless the login exists and is the user's (checked before streaming). */
  async check(userId: string, id: string): Promise<void> {
    if (this.logins.get(id)?.userId === userId) return;
    await this.rowOf(userId, id);
  }

  /**
   * Logins this node's rows say are running but this process does not hold (it restarted
   * during them) end as failed, with their own sandboxes removed; long-ended rows are dropped.
   * Run at start and then periodically by the `stale-logins` job.
   */
  async endStale(): Promise<number> {
    const rows = await this.records.repository.listForNode(this.records.node, UNFINISHED_LOGIN_STATES);
    let ended = 0;
    for (const row of rows) {
      if (this.logins.has(row.id)) continue;
      await this.records.repository.put({
        ...row,
        state: "failed",
        reason: "the server restarted during the login; start a new one",
        updatedAt: this.records.clock.now(),
      });
      ended += 1;
      if (row.ownsSandbox)
        await this.destroySandbox(row.userId, row.sandboxId).catch((error: unknown) =>
          this.log.warn({ err: error, loginId: row.id }, "could not remove a stale login's sandbox"),
        );
    }
    await this.records.repository.deleteUpdatedBefore(this.records.clock.now() - ENDED_LOGIN_RETENTION_MS);
    return ended;
  }

  /**
   * The server is stopping: its logins' rows stay unfinished and their CLIs' exits are ignored,
   * so the next start (or a survivor, for a node that is gone) ends them the one way a crash is
   * ended too, with their own sandboxes removed (`endStale`).
   */
  detach(): void {
    this.detached = true;
    for (const login of this.logins.values()) if (login.timer) clearTimeout(login.timer);
  }

  /** A sandbox went away: its logins fail. */
  sandboxEnded(sandboxId: string): void {
    for (const login of this.logins.values()) {
      if (login.view.sandboxId === sandboxId && !FINAL.includes(login.view.state)) {
        this.endQuietly(login, "failed", "the sandbox was destroyed during the login");
      }
    }
  }

  /**
   * The provider refused the code or callback: the CLIs print why and wait for another try, so
   * the login fails now with that reason instead of timing out on a waiting CLI.
   */
  private checkRefusal(login: Login): void {
    const reason = findRefusal(login.flow, login.reply);
    if (reason === undefined) return;
    const what = login.flow.finish === "code" ? "code" : "sign-in";
    this.endQuietly(
      login,
      "failed",
      `${login.view.provider} refused the ${what}: ${reason}. Start a new login and try again.`,
    );
  }

  private async onExit(login: Login, exitCode: number | null): Promise<void> {
    if (this.detached || login.ending || FINAL.includes(login.view.state)) return;
    if (exitCode !== 0 && login.view.state === "completing") {
      // Its last line may have ended without a newline.
      login.reply += "\n";
      this.checkRefusal(login);
      if (login.ending) return;
    }
    if (exitCode !== 0) {
      await this.end(
        login,
        "failed",
        `the ${login.view.provider} CLI exited with ${exitCode}: ${this.tail(login)}`,
      );
      return;
    }
    try {
      const file = await login.agent.files.read(login.flow.credentialFile);
      // The file is the sandbox's: a real one is a few KiB, and no more is read or stored.
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of file) {
        size += (chunk as Buffer).length;
        if (size > MAX_CREDENTIAL_FILE_BYTES) {
          file.destroy();
          throw new Error(`its credential file is larger than ${MAX_CREDENTIAL_FILE_BYTES} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      const text = Buffer.concat(chunks).toString("utf8");
      const stored = await this.credentials.putOAuth(login.userId, login.flow.credentialProvider, text);
      await this.onCredentialStored({
        userId: login.userId,
        provider: login.flow.credentialProvider,
        credentialId: stored.id,
      }).catch((error: unknown) =>
        this.log.warn({ err: error }, "could not audit a stored login credential"),
      );
      await this.end(login, "completed", null);
    } catch (error) {
      await this.end(login, "failed", `the CLI finished but left no usable credential: ${messageOf(error)}`);
    }
  }

  private async end(login: Login, state: LoginState, reason: string | null): Promise<void> {
    if (this.detached || login.ending || FINAL.includes(login.view.state)) return;
    login.ending = true;
    if (login.timer) clearTimeout(login.timer);
    try {
      login.pty?.kill("SIGKILL");
    } catch {
      // Its channel is gone already (the sandbox stopped): nothing is left to kill.
    }
    // The secret now lives only in the vault: remove the CLI's copy before anyone sees "completed".
    await login.agent.files.remove(login.flow.credentialFile).catch(() => undefined);
    login.view.reason = reason;
    this.setState(login, state);
    // Its row says how it ended before anyone is told, and this process lets it go.
    await login.saved;
    this.logins.delete(login.view.id);
    if (login.ownsSandbox)
      await this.destroySandbox(login.userId, login.view.sandboxId).catch(() => undefined);
    this.log.info({ loginId: login.view.id, provider: login.view.provider, state }, "login ended");
    for (const listener of this.endListeners) {
      try {
        listener(login.userId, { ...login.view });
      } catch (error) {
        this.log.warn({ err: error, loginId: login.view.id }, "a login-ended listener failed");
      }
    }
  }

  /** Ends a login from a timer or an event, where nobody waits for the result. */
  private endQuietly(login: Login, state: LoginState, reason: string): void {
    this.end(login, state, reason).catch((error: unknown) =>
      this.log.warn({ err: error, loginId: login.view.id }, "ending a login failed"),
    );
  }

  private setState(login: Login, state: LoginState): void {
    login.view.state = state;
    login.view.updatedAt = new Date(this.records.clock.now()).toISOString();
    const record = this.recordOf(login);
    login.saved = login.saved
      .then(() => this.records.repository.put(record))
      .catch((error: unknown) =>
        this.log.warn({ err: error, loginId: login.view.id }, "could not record a login's state"),
      );
    login.events.emit("change", login.view);
  }

  private recordOf(login: Login): LoginRecord {
    return {
      id: login.view.id,
      userId: login.userId,
      provider: login.view.provider,
      sandboxId: login.view.sandboxId,
      node: this.records.node,
      ownsSandbox: login.ownsSandbox,
      state: login.view.state,
      reason: login.view.reason,
      createdAt: Date.parse(login.view.createdAt),
      updatedAt: Date.parse(login.view.updatedAt),
    };
  }

  /** A row as the API shows it: the URL and code lived only in its server's memory. */
  private viewOf(row: LoginRecord): LoginView {
    const provider = row.provider as LoginProvider;
    return {
      id: row.id,
      provider,
      sandboxId: row.sandboxId,
      state: row.state as LoginState,
      url: null,
      userCode: null,
      finish: this.flows[provider]?.finish ?? "code",
      reason: row.reason,
      createdAt: new Date(row.createdAt).toISOString(),
      updatedAt: new Date(row.updatedAt).toISOString(),
    };
  }

  private async rowOf(userId: string, id: string): Promise<LoginRecord> {
    const row = await this.records.repository.get(id);
    if (!row || row.userId !== userId) throw new PolydevError("not_found", `login ${id} does not exist`);
    return row;
  }

  private waitFor(login: Login, done: (state: LoginState) => boolean, timeoutMs: number): Promise<void> {
    if (done(login.view.state)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      function finish(): void {
        clearTimeout(timer);
        login.events.off("change", check);
        resolve();
      }
      function check(view: LoginView): void {
        if (done(view.state)) finish();
      }
      login.events.on("change", check);
    });
  }

  /** The running login, or why there is none: not_found, or conflict for an ended one. */
  private async find(userId: string, id: string): Promise<Login> {
    const login = this.logins.get(id);
    if (login && login.userId === userId) return login;
    const row = await this.rowOf(userId, id);
    throw new PolydevError(
      "conflict",
      `login ${id} is ${row.state}; it takes a code only while awaiting_user`,
    );
  }

  private tail(login: Login): string {
    return login.screen.trim().split("\n").slice(-5).join(" / ").slice(-500);
  }
}

function isUnfinished(state: string): boolean {
  return (UNFINISHED_LOGIN_STATES as readonly string[]).includes(state);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Only a localhost callback is relayed: the relay must never become a way to fetch anything else. */
function parseCallback(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PolydevError(
      "invalid_request",
      "callbackUrl is not a URL; paste the full address your browser ended on",
    );
  }
  if (url.protocol !== "http:" || !["localhost", "127.0.0.1", "[::1]"].includes(url.hostname)) {
    throw new PolydevError(
      "invalid_request",
      "callbackUrl must be the http://localhost:… address the login ended on",
    );
  }
  return url.toString();
}
