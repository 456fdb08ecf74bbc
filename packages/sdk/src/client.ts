/**
 * The Polydev SDK: every call is typed from the server's own route schemas (`api-types.ts` is
 * generated from them), takes an AbortSignal, and throws the error class of the API's code.
 */
import createClient from "openapi-fetch";
import type { components, paths } from "./api-types.js";
import { errorFromResponse, PolydevApiError } from "./errors.js";
import { mcpServersApi, webhooksApi } from "./hooks.js";
import type { Image } from "./images.js";
import { imagesApi } from "./images.js";
import { loginsApi } from "./logins.js";
import { networkAdminApi, networkApi, networkPresetsApi } from "./network.js";
import { portsApi } from "./ports.js";
import { processesApi } from "./processes.js";
import type { PtyOptions, PtySession, WebSocketConstructor } from "./pty.js";
import { openPty } from "./pty.js";
import type { SandboxLogs } from "./sandbox-insight.js";
import { sandboxLogs, sandboxStats } from "./sandbox-insight.js";
import { readSse } from "./sse.js";
import type { ApiTransport } from "./transport.js";

export type Sandbox = components["schemas"]["Sandbox"];
export type SandboxListQuery = NonNullable<paths["/v1/sandboxes"]["get"]["parameters"]["query"]>;
export type Run = components["schemas"]["Run"];
export type ExecResult = components["schemas"]["ExecResult"];
export type CreateSandbox = NonNullable<
  paths["/v1/sandboxes"]["post"]["requestBody"]
>["content"]["application/json"];
export type UpdateSandbox =
  paths["/v1/sandboxes/{id}"]["patch"]["requestBody"]["content"]["application/json"];
export type ForkSandbox = NonNullable<
  paths["/v1/sandboxes/{id}/fork"]["post"]["requestBody"]
>["content"]["application/json"];
export type ExecRequest =
  paths["/v1/sandboxes/{id}/exec"]["post"]["requestBody"]["content"]["application/json"];
export type CreateRun = paths["/v1/runs"]["post"]["requestBody"]["content"]["application/json"];
export type RunChanges = components["schemas"]["RunChanges"];
export type RunKeep = components["schemas"]["RunKeep"];
export type KeepRun = NonNullable<
  paths["/v1/runs/{id}/keep"]["post"]["requestBody"]
>["content"]["application/json"];
export type GitCredential = components["schemas"]["GitCredential"];
export type PutGitCredential =
  paths["/v1/git-credentials/{host}"]["put"]["requestBody"]["content"]["application/json"];
export type RunTurn = components["schemas"]["RunTurn"];
export type Project = components["schemas"]["Project"];
export type AddProject =
  paths["/v1/sandboxes/{id}/projects"]["post"]["requestBody"]["content"]["application/json"];

export type SessionInfo = components["schemas"]["Session"];
export type AdminSandbox = components["schemas"]["AdminSandbox"];
export type AdminStats = components["schemas"]["AdminStats"];
export type User =
  paths["/v1/admin/users"]["get"]["responses"]["200"]["content"]["application/json"]["items"][number];
export type CreateUser = paths["/v1/admin/users"]["post"]["requestBody"]["content"]["application/json"];
export type Plan = components["schemas"]["Plan"];
export type PlanLimits = components["schemas"]["PlanLimits"];
export type Quota = components["schemas"]["Quota"];
export type SignIn = paths["/v1/auth/session"]["post"]["requestBody"]["content"]["application/json"];
export type ApiKey = components["schemas"]["ApiKey"];
export type CreateApiKey = paths["/v1/me/keys"]["post"]["requestBody"]["content"]["application/json"];
export type AuditEvent = components["schemas"]["AuditEvent"];
export type AuditQuery = NonNullable<paths["/v1/admin/audit"]["get"]["parameters"]["query"]>;
export type JobRun = components["schemas"]["JobRun"];

export interface PolydevOptions {
  /**
   * Where the server listens, e.g. http://127.0.0.1:7420 (env POLYDEV_URL in the CLI); in a
   * page served by Polydev, `window.location.origin`.
   */
  baseUrl: string;
  /**
   * An API key (env POLYDEV_API_KEY in the CLI). Default: none, which is browser mode: requests
   * carry the session cookie (`credentials: "include"`) and, on methods other than GET/HEAD, the
   * `x-csrf-token` header from `csrfToken`.
   */
  apiKey?: string | undefined;
  /** Browser mode only: the CSRF token of the signed-in session (from `auth.signIn` or `auth.session`). Default: none sent. */
  csrfToken?: () => string | undefined;
  /** A fetch implementation; default: the global one. */
  fetch?: typeof fetch;
  /** A WebSocket class for terminals; default: the global one (browsers, Node 22+). On Node 20 pass the `ws` package. */
  WebSocket?: WebSocketConstructor;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export type ExecEvent =
  | { type: "stdout" | "stderr"; data: string }
  | { type: "exit"; exitCode: number | null; signal: string | null; timedOut: boolean; durationMs: number };

/** One event of GET /v1/events; `data` by `type` as the API reference describes. */
export interface PolydevEvent {
  id: string;
  type: "sandbox.state" | "run.finished" | "login.finished" | "quota.reached";
  at: number;
  userId: string;
  data: Record<string, unknown>;
}

export interface RunEvent {
  seq: number;
  type: string;
  [field: string]: unknown;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

function unwrap<T>(answer: Answer<T>): T {
  if (answer.error !== undefined || !answer.response.ok)
    throw errorFromResponse(answer.response.status, answer.error);
  return answer.data as T;
}

function sandboxListQuery(options: SandboxListQuery): SandboxListQuery {
  const query: SandboxListQuery = {};
  if (options.limit !== undefined) query.limit = options.limit;
  if (options.cursor !== undefined) query.cursor = options.cursor;
  if (options.state !== undefined) query.state = options.state;
  return query;
}

export class Polydev {
  private readonly api: ReturnType<typeof createClient<paths>>;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: PolydevOptions) {
    // Called as a plain function: a browser's fetch called as a method of another object throws
    // "Illegal invocation".
    const fetchFn = options.fetch ?? globalThis.fetch;
    this.fetchImpl = (input, init) => fetchFn(input, init);
    this.api = createClient<paths>({
      baseUrl: options.baseUrl,
      fetch: this.fetchImpl,
      ...(options.apiKey === undefined ? { credentials: "include" } : {}),
    });
    this.api.use({ onRequest: ({ request }) => this.authorize(request.method, request.headers) });
  }

  /** A bearer key, or in browser mode the CSRF token on unsafe methods (the cookie goes by itself). */
  private authorize(method: string, headers: Headers): void {
    if (this.options.apiKey !== undefined) {
      headers.set("authorization", `Bearer ${this.options.apiKey}`);
      return;
    }
    if (SAFE_METHODS.has(method.toUpperCase())) return;
    const csrfToken = this.options.csrfToken?.();
    if (csrfToken) headers.set("x-csrf-token", csrfToken);
  }

  /**
   * The server's liveness and its sandbox driver's features ("durable": stop and start keep the
   * disk; "fork"; "egress"…), so a client can offer only what will work.
   * @example const { features } = await polydev.health(); if (features.includes("fork")) …
   */
  async health(call: CallOptions = {}) {
    return unwrap(await this.api.GET("/healthz", { signal: call.signal }));
  }

  /**
   * Who the key belongs to.
   * @example const me = await polydev.me(); console.log(me.name, me.role);
   */
  async me(call: CallOptions = {}) {
    return unwrap(await this.api.GET("/v1/me", { signal: call.signal }));
  }

  /**
   * Your plan, its limits and what you use of them.
   * @example const { limits, used } = await polydev.quota(); console.log(used.runningSandboxes, limits.runningSandboxes);
   */
  async quota(call: CallOptions = {}): Promise<Quota> {
    return unwrap(await this.api.GET("/v1/me/quota", { signal: call.signal }));
  }

  readonly sandboxes = {
    /**
     * Creates a sandbox; every field is optional.
     * @example const box = await polydev.sandboxes.create({ memoryMb: 512, network: "none" });
     */
    create: async (body: CreateSandbox = {}, call: CallOptions = {}): Promise<Sandbox> =>
      unwrap(await this.api.POST("/v1/sandboxes", { body, signal: call.signal })),
    /**
     * One page of your sandboxes, newest first (default 100); pass `nextCursor` back for the next.
     * @example const { items, nextCursor } = await polydev.sandboxes.list({ limit: 20, state: "running" });
     */
    list: async (options: CallOptions & SandboxListQuery = {}) =>
      unwrap(
        await this.api.GET("/v1/sandboxes", {
          params: { query: sandboxListQuery(options) },
          signal: options.signal,
        }),
      ),
    /**
     * Every one of your sandboxes, newest first, fetched page by page as you iterate.
     * @example for await (const box of polydev.sandboxes.listAll({ state: "running" })) console.log(box.id);
     */
    listAll: (options: CallOptions & Omit<SandboxListQuery, "cursor"> = {}): AsyncGenerator<Sandbox> =>
      this.allSandboxes(options),
    /** @example const box = await polydev.sandboxes.get("sbx_…"); */
    get: async (id: string, call: CallOptions = {}): Promise<Sandbox> =>
      unwrap(await this.api.GET("/v1/sandboxes/{id}", { params: { path: { id } }, signal: call.signal })),
    /**
     * Freezes every process of a running sandbox; its files and memory stay.
     * @example await polydev.sandboxes.hibernate(box.id);
     */
    hibernate: async (id: string, call: CallOptions = {}): Promise<Sandbox> =>
      unwrap(
        await this.api.POST("/v1/sandboxes/{id}/hibernate", {
          params: { path: { id } },
          signal: call.signal,
        }),
      ),
    /**
     * Thaws a hibernated sandbox: its processes continue where they stopped.
     * @example await polydev.sandboxes.resume(box.id);
     */
    resume: async (id: string, call: CallOptions = {}): Promise<Sandbox> =>
      unwrap(
        await this.api.POST("/v1/sandboxes/{id}/resume", { params: { path: { id } }, signal: call.signal }),
      ),
    /**
     * Ends every process and keeps the disk (servers whose driver is "durable"; else
     * `FeatureUnavailableError`). Idempotent. Any exec, terminal or file call starts it again.
     * @example await polydev.sandboxes.stop(box.id);
     */
    stop: async (id: string, call: CallOptions = {}): Promise<Sandbox> =>
      unwrap(
        await this.api.POST("/v1/sandboxes/{id}/stop", { params: { path: { id } }, signal: call.signal }),
      ),
    /**
     * Starts a stopped sandbox from its disk (a hibernated one is resumed, a running one returned).
     * @example const box2 = await polydev.sandboxes.start(box.id); // box2.state === "running"
     */
    start: async (id: string, call: CallOptions = {}): Promise<Sandbox> =>
      unwrap(
        await this.api.POST("/v1/sandboxes/{id}/start", { params: { path: { id } }, signal: call.signal }),
      ),
    /**
     * Grows a sandbox's disk; a smaller `diskMb` is an `InvalidRequestError` (disks only grow).
     * @example await polydev.sandboxes.update(box.id, { diskMb: 4096 });
     */
    update: async (id: string, body: UpdateSandbox, call: CallOptions = {}): Promise<Sandbox> =>
      unwrap(
        await this.api.PATCH("/v1/sandboxes/{id}", { params: { path: { id } }, body, signal: call.signal }),
      ),
    /**
     * New sandboxes whose disks start as copy-on-write copies of this one's (all or none; each
     * counts against your sandbox limit).
     * @example const forks = await polydev.sandboxes.fork(box.id, { count: 3 });
     */
    fork: async (id: string, body: ForkSandbox = { count: 1 }, call: CallOptions = {}): Promise<Sandbox[]> =>
      unwrap(
        await this.api.POST("/v1/sandboxes/{id}/fork", {
          params: { path: { id } },
          body,
          signal: call.signal,
        }),
      ).sandboxes,
    /**
     * Turns the sandbox's disk, as it is now, into an image (its image plus one copy-on-write layer
     * of its changes) that new sandboxes start from; the sandbox keeps running. Servers whose driver
     * lacks "snapshot" answer `FeatureUnavailableError`.
     * @example const image = await polydev.sandboxes.snapshot(box.id, "alice/with-deps:1"); await polydev.sandboxes.create({ image: image.name });
     */
    snapshot: async (id: string, name: string, call: CallOptions = {}): Promise<Image> =>
      unwrap(
        await this.api.POST("/v1/sandboxes/{id}/snapshots", {
          params: { path: { id } },
          body: { name },
          signal: call.signal,
        }),
      ),
    /** Idempotent. @example await polydev.sandboxes.destroy(box.id); */
    destroy: async (id: string, call: CallOptions = {}): Promise<Sandbox> =>
      unwrap(await this.api.DELETE("/v1/sandboxes/{id}", { params: { path: { id } }, signal: call.signal })),
    /**
     * Runs a command and waits for it.
     * @example const { stdout, exitCode } = await polydev.sandboxes.exec(box.id, { cmd: "ls -la" });
     */
    exec: async (id: string, body: ExecRequest, call: CallOptions = {}): Promise<ExecResult> =>
      unwrap(
        await this.api.POST("/v1/sandboxes/{id}/exec", {
          params: { path: { id } },
          body,
          signal: call.signal,
        }),
      ),
    /**
     * Runs a command and yields its output as it is produced, then its exit.
     * @example for await (const e of polydev.sandboxes.execStream(box.id, { cmd: "make" })) if (e.type === "stdout") process.stdout.write(e.data);
     */
    execStream: (id: string, body: ExecRequest, call: CallOptions = {}): AsyncGenerator<ExecEvent> =>
      this.execStream(id, body, call),
    /**
     * Writes a file under the home (streamed).
     * @example await polydev.sandboxes.writeFile(box.id, "notes/todo.txt", "buy milk\n");
     */
    writeFile: async (id: string, path: string, content: BodyInit, call: CallOptions = {}) => {
      const response = await this.raw(
        `/v1/sandboxes/${encodeURIComponent(id)}/files/content?path=${encodeURIComponent(path)}`,
        {
          method: "PUT",
          headers: { "content-type": "application/octet-stream" },
          body: content,
          ...(call.signal ? { signal: call.signal } : {}),
          duplex: "half",
        } as RequestInit,
      );
      return (await response.json()) as { path: string; sizeBytes: number };
    },
    /**
     * Reads a file under the home as a stream of bytes.
     * @example const text = await new Response(await polydev.sandboxes.readFile(box.id, "notes/todo.txt")).text();
     */
    readFile: async (
      id: string,
      path: string,
      call: CallOptions = {},
    ): Promise<ReadableStream<Uint8Array>> => {
      const response = await this.raw(
        `/v1/sandboxes/${encodeURIComponent(id)}/files/content?path=${encodeURIComponent(path)}`,
        call.signal ? { signal: call.signal } : {},
      );
      if (!response.body) throw errorFromResponse(response.status, undefined);
      return response.body;
    },
    /** @example const { items } = await polydev.sandboxes.listFiles(box.id, "."); */
    listFiles: async (id: string, path = ".", call: CallOptions = {}) =>
      unwrap(
        await this.api.GET("/v1/sandboxes/{id}/files", {
          params: { path: { id }, query: { path } },
          signal: call.signal,
        }),
      ),
    /**
     * Opens an interactive terminal; the same `reconnectId` later reattaches to the same shell.
     * @example const term = await polydev.sandboxes.pty(box.id, { cols: 80, rows: 24 }); term.onData((b) => out.write(b)); term.write("ls\r");
     */
    pty: (id: string, options: PtyOptions = {}): Promise<PtySession> =>
      openPty({ ...this.options, sandboxId: id, diagnose: () => this.sandboxes.get(id) }, options),
    /** Lifecycle logs and console output, kept after a failure. @example const { items } = await polydev.sandboxes.logs(box.id); */
    logs: (id: string, options: CallOptions & { afterId?: number; limit?: number } = {}) =>
      sandboxLogs(this.transport(), id, options),
    /** Live CPU, memory, processes, disk. @example const { memoryBytes } = await polydev.sandboxes.stats(box.id); */
    stats: (id: string, call: CallOptions = {}) => sandboxStats(this.transport(), id, call),
    /** Background processes (see processes.ts). @example await polydev.sandboxes.processes.start(box.id, { cmd: "npm run dev" }); */
    processes: processesApi(this.transport()),
    /**
     * An allow-list sandbox's egress policy and audit log (see network.ts).
     * @example await polydev.sandboxes.network.update(box.id, { deny: ["*.ads.example.com"] });
     */
    network: networkApi(this.transport()),
    /**
     * Listening ports and preview URLs (see ports.ts).
     * @example const { url } = await polydev.sandboxes.ports.previewLink(box.id, 3000);
     */
    ports: portsApi(this.transport()),
  };

  /** Signed notifications when runs and groups end (see hooks.ts, docs/webhooks.md). */
  readonly webhooks = webhooksApi(this.transport());

  /** MCP servers every run's agents get unless the run opts out (see hooks.ts). */
  readonly mcpServers = mcpServersApi(this.transport());

  /** The named allow-lists an admin defines (e.g. "package-registries", "github"). */
  readonly networkPresets = networkPresetsApi(this.transport());

  /** Images sandboxes are made from: build, pull, import, tag, delete (see images.ts). */
  readonly images = imagesApi(this.transport());

  /** Provider sign-ins run by the provider's own CLI in a sandbox (see logins.ts). */
  readonly logins = loginsApi(this.transport());

  readonly projects = {
    /**
     * Clones a git repository into the sandbox (the clone runs inside it, over its egress), or
     * makes an existing folder of the sandbox a project.
     * @example const app = await polydev.projects.add(box.id, { url: "https://github.com/org/app.git", ref: "main", check: "npm test" });
     */
    add: async (sandboxId: string, body: AddProject, call: CallOptions = {}): Promise<Project> =>
      unwrap(
        await this.api.POST("/v1/sandboxes/{id}/projects", {
          params: { path: { id: sandboxId } },
          body,
          signal: call.signal,
        }),
      ),
    /** @example const { items } = await polydev.projects.list(box.id); */
    list: async (sandboxId: string, call: CallOptions = {}): Promise<{ items: Project[] }> =>
      unwrap(
        await this.api.GET("/v1/sandboxes/{id}/projects", {
          params: { path: { id: sandboxId } },
          signal: call.signal,
        }),
      ),
  };

  readonly runs = {
    /**
     * Starts a run (one agent) or a group (several agents on the same prompt).
     * @example const run = await polydev.runs.create({ agent: "claude", prompt: "add a README" });
     */
    create: async (body: CreateRun, call: CallOptions = {}) =>
      unwrap(await this.api.POST("/v1/runs", { body, signal: call.signal })),
    /** @example const run = await polydev.runs.get(id); console.log(run.state, run.finalText); */
    get: async (id: string, call: CallOptions = {}): Promise<Run> =>
      unwrap(await this.api.GET("/v1/runs/{id}", { params: { path: { id } }, signal: call.signal })),
    /**
     * Your runs, newest first; `groupId` lists one group's agents.
     * @example const { items } = await polydev.runs.list({ groupId: started.groupId });
     */
    list: async (query: { limit?: number; cursor?: string; groupId?: string } = {}, call: CallOptions = {}) =>
      unwrap(
        await this.api.GET("/v1/runs", {
          params: {
            query: {
              limit: query.limit ?? 50,
              ...(query.cursor ? { cursor: query.cursor } : {}),
              ...(query.groupId ? { groupId: query.groupId } : {}),
            },
          },
          signal: call.signal,
        }),
      ),
    /**
     * What a run in a project changed: its diff against the commit it started from, the changed
     * files and its check's result (recorded when the run ends; 404 for a run without a project).
     * @example const { files, diff, check } = await polydev.runs.changes(run.id);
     */
    changes: async (id: string, call: CallOptions = {}): Promise<RunChanges> =>
      unwrap(await this.api.GET("/v1/runs/{id}/changes", { params: { path: { id } }, signal: call.signal })),
    /**
     * Keeps a finished run's change: a commit on a branch in the original project, then a
     * fast-forward or merge; with `push` the branch is pushed from the sandbox, with `pullRequest`
     * a pull request is opened. A conflict throws `merge_conflict` (details.paths) and leaves the
     * project as it was, the branch in place.
     * @example const kept = await polydev.runs.keep(run.id, { push: true, pullRequest: { title: "Fix" } });
     */
    keep: async (
      id: string,
      body: KeepRun = {},
      call: CallOptions = {},
    ): Promise<RunKeep & { otherKeptRuns: string[] }> =>
      unwrap(
        await this.api.POST("/v1/runs/{id}/keep", { params: { path: { id } }, body, signal: call.signal }),
      ),
    /**
     * Sends a follow-up to a finished run: its agent continues the same session, in the same
     * sandbox and folder, as the run's next turn. Its events follow `afterSeq`.
     * @example const { afterSeq } = await polydev.runs.reply(run.id, "now add tests");
     * for await (const e of polydev.runs.events(run.id, { after: afterSeq })) console.log(e.type);
     */
    reply: async (id: string, prompt: string, call: CallOptions = {}): Promise<RunTurn> =>
      unwrap(
        await this.api.POST("/v1/runs/{id}/messages", {
          params: { path: { id } },
          body: { prompt },
          signal: call.signal,
        }),
      ),
    /**
     * Sends the same follow-up to every run of a group (refused as a whole while any still works).
     * @example const { turns } = await polydev.runs.replyToGroup(groupId, "now add tests");
     */
    replyToGroup: async (
      groupId: string,
      prompt: string,
      call: CallOptions = {},
    ): Promise<{ groupId: string; turns: RunTurn[] }> =>
      unwrap(
        await this.api.POST("/v1/groups/{groupId}/messages", {
          params: { path: { groupId } },
          body: { prompt },
          signal: call.signal,
        }),
      ),
    /** @example await polydev.runs.cancel(id); */
    cancel: async (id: string, call: CallOptions = {}): Promise<Run> =>
      unwrap(await this.api.POST("/v1/runs/{id}/cancel", { params: { path: { id } }, signal: call.signal })),
    /**
     * The run's events until it has ended (every turn: a follow-up's events continue the same
     * stream; `after` starts past the ones seen). A dropped connection is resumed from the last
     * event seen (Last-Event-ID), so nothing is missed or repeated.
     * @example for await (const e of polydev.runs.events(run.id)) if (e.type === "text") process.stdout.write(String(e.delta));
     */
    events: (
      id: string,
      call: CallOptions & { after?: number; maxReconnects?: number } = {},
    ): AsyncGenerator<RunEvent> => this.runEvents(id, call),
  };

  /**
   * The caller's events (sandbox state changes, finished runs and logins, quotas reached) as
   * they happen, until `signal` aborts. A dropped connection is resumed from the last event seen
   * (Last-Event-ID), so nothing the server still retains is missed or repeated. Admins pass
   * `all: true` for every user's events.
   * @example for await (const e of polydev.events({ signal })) if (e.type === "sandbox.state") console.log(e.data.state);
   */
  events(
    call: CallOptions & { all?: boolean; after?: string; maxReconnects?: number } = {},
  ): AsyncGenerator<PolydevEvent> {
    return this.eventStream(call);
  }

  readonly auth = {
    /**
     * Signs in with a name and password, or an API key; the server sets the session cookie. Keep
     * the returned `csrfToken` for the `csrfToken` option.
     * @example const { user, csrfToken } = await polydev.auth.signIn({ name: "ada", password });
     */
    signIn: async (body: SignIn, call: CallOptions = {}): Promise<SessionInfo> =>
      unwrap(await this.api.POST("/v1/auth/session", { body, signal: call.signal })),
    /**
     * The signed-in user and CSRF token of the current cookie; throws UnauthorizedError when signed out.
     * @example const session = await polydev.auth.session().catch(() => undefined);
     */
    session: async (call: CallOptions = {}): Promise<SessionInfo> =>
      unwrap(await this.api.GET("/v1/auth/session", { signal: call.signal })),
    /** Ends the session and expires its cookie. @example await polydev.auth.signOut(); */
    signOut: async (call: CallOptions = {}): Promise<void> => {
      await this.raw("/v1/auth/session", {
        method: "DELETE",
        ...(call.signal ? { signal: call.signal } : {}),
      });
    },
    /**
     * Sets your own password; `currentPassword` is required once one is set. Your other sessions end.
     * @example await polydev.auth.setPassword({ currentPassword: old, password: next });
     */
    setPassword: async (body: { currentPassword?: string; password: string }, call: CallOptions = {}) => {
      await this.raw("/v1/me/password", {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        ...(call.signal ? { signal: call.signal } : {}),
      });
    },
  };

  /** Your own API keys. */
  readonly keys = {
    /**
     * Your keys, oldest first: name, prefix, created, expires, last used; never the secret.
     * @example const { items } = await polydev.keys.list(); items.map((k) => `${k.name} ${k.prefix}…`);
     */
    list: async (call: CallOptions = {}): Promise<{ items: ApiKey[] }> =>
      unwrap(await this.api.GET("/v1/me/keys", { signal: call.signal })),
    /**
     * Creates a key; `apiKey` is its secret, returned this once and never again.
     * @example const { key, apiKey } = await polydev.keys.create({ name: "ci", expiresAt: "2027-01-01T00:00:00Z" });
     */
    create: async (body: CreateApiKey, call: CallOptions = {}): Promise<{ key: ApiKey; apiKey: string }> =>
      unwrap(await this.api.POST("/v1/me/keys", { body, signal: call.signal })),
    /**
     * Revokes one of your keys: requests with it answer 401 from now on.
     * @example await polydev.keys.revoke("key_…");
     */
    revoke: async (id: string, call: CallOptions = {}): Promise<void> => {
      await this.raw(`/v1/me/keys/${encodeURIComponent(id)}`, {
        method: "DELETE",
        ...(call.signal ? { signal: call.signal } : {}),
      });
    },
  };

  /** Operator routes; every call needs an admin. */
  readonly admin = {
    /**
     * One page of the audit log (sign-ins, keys, passwords, credentials, users, roles), newest
     * first; pass `nextCursor` back as `cursor` for the next page.
     * @example const { items } = await polydev.admin.audit({ action: "sign_in", outcome: "failure" });
     */
    audit: async (
      query: AuditQuery = {},
      call: CallOptions = {},
    ): Promise<{ items: AuditEvent[]; nextCursor: string | null }> =>
      unwrap(await this.api.GET("/v1/admin/audit", { params: { query }, signal: call.signal })),
    users: {
      /**
       * Creates a user and its first API key (returned once), optionally with a dashboard password.
       * @example const { user, apiKey } = await polydev.admin.users.create({ name: "ada", password });
       */
      create: async (body: CreateUser, call: CallOptions = {}) =>
        unwrap(await this.api.POST("/v1/admin/users", { body, signal: call.signal })),
      /** @example const { items } = await polydev.admin.users.list(); */
      list: async (call: CallOptions = {}): Promise<{ items: User[] }> =>
        unwrap(await this.api.GET("/v1/admin/users", { signal: call.signal })),
      /**
       * Puts a user on a plan, or (null) back on the default plan; answers their quota.
       * @example await polydev.admin.users.setPlan(userId, "team");
       */
      setPlan: async (id: string, plan: string | null, call: CallOptions = {}): Promise<Quota> =>
        unwrap(
          await this.api.PUT("/v1/admin/users/{id}/plan", {
            params: { path: { id } },
            body: { plan },
            signal: call.signal,
          }),
        ),
      /** @example const { plan, limits, used } = await polydev.admin.users.quota(userId); */
      quota: async (id: string, call: CallOptions = {}): Promise<Quota> =>
        unwrap(
          await this.api.GET("/v1/admin/users/{id}/quota", { params: { path: { id } }, signal: call.signal }),
        ),
    },
    plans: {
      /** @example const { items } = await polydev.admin.plans.list(); */
      list: async (call: CallOptions = {}): Promise<{ items: Plan[] }> =>
        unwrap(await this.api.GET("/v1/admin/plans", { signal: call.signal })),
      /**
       * Creates or replaces a plan; absent limits are unlimited. The plan named "default" covers
       * users put on none.
       * @example await polydev.admin.plans.put("team", { limits: { runningSandboxes: 5, runsPerHour: 100 } });
       */
      put: async (
        name: string,
        body: { description?: string; limits: PlanLimits },
        call: CallOptions = {},
      ): Promise<Plan> =>
        unwrap(
          await this.api.PUT("/v1/admin/plans/{name}", {
            params: { path: { name } },
            body: { description: body.description ?? "", limits: body.limits },
            signal: call.signal,
          }),
        ),
      /** Deletes a plan nobody is on. @example await polydev.admin.plans.delete("trial"); */
      delete: async (name: string, call: CallOptions = {}): Promise<void> => {
        unwrap(
          await this.api.DELETE("/v1/admin/plans/{name}", {
            params: { path: { name } },
            signal: call.signal,
          }),
        );
      },
    },
    /**
     * One page of every user's sandboxes with their owner, newest first (default 100); pass
     * `nextCursor` back as `cursor` for the next page.
     * @example const { items, nextCursor } = await polydev.admin.sandboxes({ state: "running" }); items.map((s) => `${s.ownerName} ${s.state}`);
     */
    sandboxes: async (
      query: SandboxListQuery = {},
      call: CallOptions = {},
    ): Promise<{ items: AdminSandbox[]; nextCursor: string | null }> =>
      unwrap(
        await this.api.GET("/v1/admin/sandboxes", {
          params: { query: sandboxListQuery(query) },
          signal: call.signal,
        }),
      ),
    /**
     * Any user's sandbox, with its owner (by id; the owner's shell, files and runs stay theirs).
     * @example const box = await polydev.admin.sandbox("sbx_…"); console.log(box.ownerName, box.state);
     */
    sandbox: async (id: string, call: CallOptions = {}): Promise<AdminSandbox> =>
      unwrap(
        await this.api.GET("/v1/admin/sandboxes/{id}", { params: { path: { id } }, signal: call.signal }),
      ),
    /**
     * Any user's sandbox's lifecycle log, oldest first.
     * @example const { items } = await polydev.admin.sandboxLogs("sbx_…");
     */
    sandboxLogs: async (
      id: string,
      options: CallOptions & { afterId?: number; limit?: number } = {},
    ): Promise<{ items: SandboxLogs["items"] }> =>
      unwrap(
        await this.api.GET("/v1/admin/sandboxes/{id}/logs", {
          params: {
            path: { id },
            query: {
              ...(options.afterId !== undefined ? { afterId: options.afterId } : {}),
              ...(options.limit !== undefined ? { limit: options.limit } : {}),
            },
          },
          signal: options.signal,
        }),
      ),
    /**
     * Destroys any user's sandbox (idempotent); its log names the admin who did.
     * @example await polydev.admin.destroySandbox("sbx_…");
     */
    destroySandbox: async (id: string, call: CallOptions = {}): Promise<AdminSandbox> =>
      unwrap(
        await this.api.DELETE("/v1/admin/sandboxes/{id}", { params: { path: { id } }, signal: call.signal }),
      ),
    /**
     * Users, sandboxes by state, runs per hour and provider usage over the last 24 hours.
     * @example const { runsPerHour } = await polydev.admin.stats();
     */
    stats: async (call: CallOptions = {}): Promise<AdminStats> =>
      unwrap(await this.api.GET("/v1/admin/stats", { signal: call.signal })),
    /**
     * Each background job's last run (cluster-wide jobs once, per-node jobs per node) and outcome.
     * @example const failed = (await polydev.admin.jobs()).items.filter((r) => r.outcome === "failed");
     */
    jobs: async (call: CallOptions = {}): Promise<{ items: JobRun[] }> =>
      unwrap(await this.api.GET("/v1/admin/jobs", { signal: call.signal })),
    ...networkAdminApi(this.transport()),
  };

  readonly credentials = {
    /** @example await polydev.credentials.put("anthropic", process.env.ANTHROPIC_API_KEY ?? ""); */
    put: async (provider: "anthropic" | "openai" | "gemini", apiKey: string, call: CallOptions = {}) =>
      unwrap(
        await this.api.PUT("/v1/credentials/{provider}", {
          params: { path: { provider } },
          body: { apiKey },
          signal: call.signal,
        }),
      ),
    /** @example const { items } = await polydev.credentials.list(); */
    list: async (call: CallOptions = {}) =>
      unwrap(await this.api.GET("/v1/credentials", { signal: call.signal })),
    /** @example await polydev.credentials.remove("openai"); */
    remove: async (provider: "anthropic" | "openai" | "gemini", call: CallOptions = {}) =>
      unwrap(
        await this.api.DELETE("/v1/credentials/{provider}", {
          params: { path: { provider } },
          signal: call.signal,
        }),
      ),
  };

  /**
   * Git hosts' tokens: kept on the server, used to clone and push private repositories through
   * its relay (the token never enters a sandbox) and to open pull requests.
   */
  readonly gitCredentials = {
    /** @example await polydev.gitCredentials.put("github.com", { token: process.env.GITHUB_TOKEN ?? "" }); */
    put: async (host: string, body: PutGitCredential, call: CallOptions = {}): Promise<GitCredential> =>
      unwrap(
        await this.api.PUT("/v1/git-credentials/{host}", {
          params: { path: { host } },
          body,
          signal: call.signal,
        }),
      ),
    /** @example const { items } = await polydev.gitCredentials.list(); */
    list: async (call: CallOptions = {}) =>
      unwrap(await this.api.GET("/v1/git-credentials", { signal: call.signal })),
    /** @example await polydev.gitCredentials.remove("github.com"); */
    remove: async (host: string, call: CallOptions = {}) =>
      unwrap(
        await this.api.DELETE("/v1/git-credentials/{host}", {
          params: { path: { host } },
          signal: call.signal,
        }),
      ),
  };

  /** For the helpers in their own files; lazy, because fields initialize before `api` is set. */
  private transport(): ApiTransport {
    return { api: () => this.api, raw: (path, init) => this.raw(path, init) };
  }

  private raw(path: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    this.authorize(init.method ?? "GET", headers);
    const credentials: RequestCredentials | undefined =
      this.options.apiKey === undefined ? "include" : undefined;
    return this.fetchImpl(`${this.options.baseUrl}${path}`, {
      ...init,
      headers,
      ...(credentials ? { credentials } : {}),
    }).then(async (response) => {
      if (!response.ok)
        throw errorFromResponse(response.status, await response.json().catch(() => undefined));
      return response;
    });
  }

  private async *allSandboxes(
    options: CallOptions & Omit<SandboxListQuery, "cursor">,
  ): AsyncGenerator<Sandbox> {
    let cursor: string | undefined;
    do {
      const page = await this.sandboxes.list({ ...options, ...(cursor === undefined ? {} : { cursor }) });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }

  private async *execStream(id: string, body: ExecRequest, call: CallOptions): AsyncGenerator<ExecEvent> {
    const response = await this.raw(`/v1/sandboxes/${encodeURIComponent(id)}/exec`, {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json" },
      body: JSON.stringify(body),
      ...(call.signal ? { signal: call.signal } : {}),
    });
    if (!response.body) return;
    for await (const message of readSse(response.body)) {
      const data = JSON.parse(message.data) as Record<string, unknown>;
      if (message.event === "exit")
        yield { type: "exit", ...(data as Omit<Extract<ExecEvent, { type: "exit" }>, "type">) };
      else yield { type: message.event === "stderr" ? "stderr" : "stdout", data: String(data.data ?? "") };
    }
  }

  private async *eventStream(
    call: CallOptions & { all?: boolean; after?: string; maxReconnects?: number },
  ): AsyncGenerator<PolydevEvent> {
    let last = call.after;
    let reconnects = 0;
    for (;;) {
      try {
        const response = await this.raw(`/v1/events${call.all ? "?all=1" : ""}`, {
          headers: { accept: "text/event-stream", ...(last === undefined ? {} : { "last-event-id": last }) },
          ...(call.signal ? { signal: call.signal } : {}),
        });
        if (!response.body) return;
        for await (const message of readSse(response.body)) {
          const event = JSON.parse(message.data) as PolydevEvent;
          last = event.id;
          reconnects = 0;
          yield event;
        }
      } catch (error) {
        if (call.signal?.aborted) return;
        if (error instanceof PolydevApiError) throw error;
        if (reconnects >= (call.maxReconnects ?? 5)) throw error;
      }
      if (call.signal?.aborted) return;
      reconnects += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 100 * 2 ** reconnects)));
    }
  }

  private async *runEvents(
    id: string,
    call: CallOptions & { after?: number; maxReconnects?: number },
  ): AsyncGenerator<RunEvent> {
    let last = call.after ?? 0;
    let reconnects = 0;
    for (;;) {
      let finished = false;
      try {
        const response = await this.raw(`/v1/runs/${encodeURIComponent(id)}/events`, {
          headers: { "last-event-id": String(last) },
          ...(call.signal ? { signal: call.signal } : {}),
        });
        if (!response.body) return;
        for await (const message of readSse(response.body)) {
          const event = JSON.parse(message.data) as RunEvent;
          last = event.seq;
          yield event;
          if (event.type === "done") finished = true;
        }
        if (finished) return;
      } catch (error) {
        // API errors (a foreign run, a bad key) are answers, not dropped connections.
        if (call.signal?.aborted || error instanceof PolydevApiError) throw error;
        if (reconnects >= (call.maxReconnects ?? 5)) throw error;
      }
      if (finished) return;
      reconnects += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 100 * 2 ** reconnects)));
    }
  }
}
