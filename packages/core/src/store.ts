/**
 * The Store port: repositories over the one database that is the source of truth. Services
 * depend on these interfaces only, so SQLite and Postgres are interchangeable.
 */
import type { EgressPolicy, NetworkChoice, NetworkMode, SandboxHandle, SandboxState } from "./sandbox.js";

export type UserRole = "admin" | "user";

export interface UserRecord {
  id: string;
  name: string;
  role: UserRole;
  passwordHash: string | null;
  createdAt: number;
}

export interface ApiKeyRecord {
  id: string;
  userId: string;
  name: string;
  keyHash: string;
  prefix: string;
  createdAt: number;
  lastUsedAt: number | null;
  /** After this instant the key answers 401; null: it never expires. */
  expiresAt: number | null;
}

/** An external issuer's account linked to a user: the pair (issuer, subject) names it for good. */
export interface UserIdentityRecord {
  issuer: string;
  subject: string;
  userId: string;
  createdAt: number;
}

export interface UserIdentityRepository {
  find(issuer: string, subject: string): Promise<UserRecord | undefined>;
  link(identity: UserIdentityRecord): Promise<void>;
}

export type AuditOutcome = "success" | "failure";

/** One security-relevant action. Never holds a secret: keys appear by id and prefix only. */
export interface AuditEvent {
  id: number;
  at: number;
  /** e.g. `sign_in`, `api_key.create`, `user.role_change` */
  action: string;
  outcome: AuditOutcome;
  actorId: string | null;
  actorName: string | null;
  targetType: string | null;
  targetId: string | null;
  ip: string | null;
  details: Record<string, string | number | boolean | null>;
}

export type NewAuditEvent = Omit<AuditEvent, "id">;

export interface AuditFilter {
  action?: string | undefined;
  outcome?: AuditOutcome | undefined;
  actorId?: string | undefined;
  targetId?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
  /** Only events older than this id (the cursor of the previous page). */
  beforeId?: number | undefined;
  limit: number;
}

export interface AuditRepository {
  append(event: NewAuditEvent): Promise<void>;
  /** Newest first; `nextCursor` is the last item's id. */
  list(filter: AuditFilter): Promise<Page<AuditEvent>>;
  /** Drops events older than `olderThan` and all but the newest `keep`; returns how many went. */
  prune(keep: number, olderThan: number): Promise<number>;
}

export interface SandboxRecord {
  id: string;
  userId: string;
  /** The owner's name for it (`^[a-z0-9][a-z0-9-]{0,62}$`), unique among their non-destroyed sandboxes. */
  name: string | null;
  state: SandboxState;
  failureReason: string | null;
  driver: string;
  handle: SandboxHandle | null;
  cpu: number;
  memoryMb: number;
  diskMb: number;
  pidsMax: number;
  network: NetworkMode;
  /** The allow-list sandbox's rules; null for other modes. */
  egressPolicy: EgressPolicy | null;
  env: Record<string, string>;
  metadata: Record<string, string>;
  timeoutMs: number;
  idleTimeoutMs: number;
  createdAt: number;
  updatedAt: number;
  stateChangedAt: number;
  lastActivityAt: number;
  expiresAt: number;
  destroyedAt: number | null;
  /** Digest of the image the sandbox was made from (null: the host view, made before images). */
  image: string | null;
  /**
   * The node (server process) that hosts it and answers for it (see NodeRecord); null for rows
   * made before nodes existed, which every node treats as its own (one server per database then).
   */
  node: string | null;
}

export type NewSandbox = Omit<
  SandboxRecord,
  | "name"
  | "failureReason"
  | "handle"
  | "updatedAt"
  | "stateChangedAt"
  | "lastActivityAt"
  | "destroyedAt"
  | "image"
  | "node"
> & { name?: string | null | undefined; image?: string | null | undefined; node?: string | null | undefined };

export type LogLevel = "info" | "warn" | "error";
export type LogSource = "server" | "driver" | "console";

export interface SandboxLogEntry {
  id: number;
  sandboxId: string;
  at: number;
  level: LogLevel;
  source: LogSource;
  message: string;
}

export type NewSandboxLogEntry = Omit<SandboxLogEntry, "id" | "sandboxId">;

export interface Page<T> {
  items: T[];
  /** Opaque; pass back to get the next page. Undefined on the last page. */
  nextCursor: string | undefined;
}

export interface UserRepository {
  create(user: UserRecord): Promise<UserRecord>;
  /** The operator's proxy for this user's provider traffic; null restores the default. */
  setEgressProxy(id: string, proxyUrl: string | null): Promise<void>;
  getEgressProxy(id: string): Promise<string | null>;
  /** The network a user's sandboxes get when a create names none; null: the server's default. */
  setNetworkDefault(id: string, network: NetworkChoice | null): Promise<void>;
  getNetworkDefault(id: string): Promise<NetworkChoice | null>;
  getById(id: string): Promise<UserRecord | undefined>;
  getByName(name: string): Promise<UserRecord | undefined>;
  list(): Promise<UserRecord[]>;
  count(): Promise<number>;
  /** Null removes the password (API keys only). */
  setPasswordHash(id: string, passwordHash: string | null): Promise<void>;
  setRole(id: string, role: UserRole): Promise<void>;
}

/** A browser session. Only a hash of its cookie token is stored, never the token itself. */
export interface SessionRecord {
  id: string;
  userId: string;
  tokenHash: string;
  createdAt: number;
  lastSeenAt: number;
  /** The absolute end; the idle end is `lastSeenAt` plus the configured idle timeout. */
  expiresAt: number;
}

export interface SessionRepository {
  create(session: SessionRecord): Promise<SessionRecord>;
  findByTokenHash(tokenHash: string): Promise<{ session: SessionRecord; user: UserRecord } | undefined>;
  touch(id: string, at: number): Promise<void>;
  delete(id: string): Promise<boolean>;
  /** Every session of a user except `exceptId` (a password change signs out the other browsers). */
  deleteForUser(userId: string, exceptId?: string): Promise<number>;
  /** Sessions past their absolute end or idle since before `idleBefore`. */
  deleteExpired(now: number, idleBefore: number): Promise<number>;
}

export interface ApiKeyRepository {
  create(
    key: Omit<ApiKeyRecord, "lastUsedAt" | "expiresAt"> & { expiresAt?: number | null | undefined },
  ): Promise<ApiKeyRecord>;
  findByHash(keyHash: string): Promise<{ key: ApiKeyRecord; user: UserRecord } | undefined>;
  listForUser(userId: string): Promise<ApiKeyRecord[]>;
  touch(id: string, at: number): Promise<void>;
  delete(userId: string, id: string): Promise<boolean>;
}

export interface SandboxRepository {
  insert(sandbox: NewSandbox): Promise<SandboxRecord>;
  get(id: string): Promise<SandboxRecord | undefined>;
  /** Undefined when the sandbox does not exist or belongs to someone else. */
  getForUser(userId: string, id: string): Promise<SandboxRecord | undefined>;
  /** The user's non-destroyed sandbox of this name, if any. */
  getForUserByName(userId: string, name: string): Promise<SandboxRecord | undefined>;
  /** Newest first; pass `nextCursor` back as `cursor` for the next page. */
  listForUser(
    userId: string,
    options: { limit: number; cursor?: string | undefined; states?: SandboxState[] | undefined },
  ): Promise<Page<SandboxRecord>>;
  /** Oldest first. An empty `states` matches nothing. */
  listByStates(states: SandboxState[]): Promise<SandboxRecord[]>;
  /** Newest first across every user (for admins); paged like `listForUser`. */
  listPage(options: {
    limit: number;
    cursor?: string | undefined;
    states?: SandboxState[] | undefined;
  }): Promise<Page<SandboxRecord>>;
  /** Every sandbox of every user, oldest first: for reconciliation, not for paging. */
  listAll(): Promise<SandboxRecord[]>;
  /** Sandboxes that hold resources: creating, running, hibernated or stopped. */
  countLiveForUser(userId: string): Promise<number>;
  countByState(): Promise<Record<SandboxState, number>>;
  /** Sandboxes per state and driver (pairs with none are absent): for metrics at scrape time. */
  countByStateAndDriver(): Promise<{ state: SandboxState; driver: string; count: number }[]>;
  setHandle(id: string, handle: SandboxHandle): Promise<void>;
  /**
   * Compare-and-set: moves the sandbox to `to` only if it is in one of `from`. Returns the
   * updated row, or undefined if another writer got there first. Every state change is written
   * this way before it is acted on, so two writers can never both act on one sandbox.
   */
  transition(
    id: string,
    from: SandboxState[],
    to: SandboxState,
    patch: { at: number; failureReason?: string },
  ): Promise<SandboxRecord | undefined>;
  /** One cheap UPDATE; callers throttle it (activity only matters at idle-timeout scale). */
  touchActivity(id: string, at: number): Promise<void>;
  /** Replaces an allow-list sandbox's rules; the updated row, undefined if there is none. */
  setEgressPolicy(id: string, policy: EgressPolicy, at: number): Promise<SandboxRecord | undefined>;
  /** Running, hibernated or stopped sandboxes whose `expiresAt <= now`. */
  listExpired(now: number): Promise<SandboxRecord[]>;
  /** Running sandboxes whose `lastActivityAt + idleTimeoutMs <= now`. */
  listIdle(now: number): Promise<SandboxRecord[]>;
  /** Stopped sandboxes that have been stopped since `before` or earlier (oldest first). */
  listStoppedSince(before: number): Promise<SandboxRecord[]>;
  /** Records a grown disk; the updated row, undefined if there is none. */
  setDiskMb(id: string, diskMb: number, at: number): Promise<SandboxRecord | undefined>;
}

export interface SandboxLogRepository {
  append(sandboxId: string, entries: NewSandboxLogEntry[]): Promise<void>;
  list(
    sandboxId: string,
    options: { afterId?: number | undefined; limit: number },
  ): Promise<SandboxLogEntry[]>;
}

/** A named list of egress rules an admin defines (e.g. "package-registries"). */
export interface EgressPresetRecord {
  name: string;
  description: string;
  allow: string[];
  deny: string[];
  createdAt: number;
  updatedAt: number;
}

export interface EgressPresetRepository {
  /** By name. */
  list(): Promise<EgressPresetRecord[]>;
  get(name: string): Promise<EgressPresetRecord | undefined>;
  /** Creates or replaces (keeping `createdAt`). */
  put(preset: EgressPresetRecord): Promise<EgressPresetRecord>;
  delete(name: string): Promise<boolean>;
}

/** One decision of an allow-list sandbox's egress policy. */
export interface EgressAuditRecord {
  id: number;
  sandboxId: string;
  at: number;
  kind: "tcp" | "dns";
  /** The name (SNI, Host or DNS query) when one was known. */
  host: string | null;
  address: string;
  port: number;
  decision: "allowed" | "denied";
  reason: string;
  /** Sandbox to world. */
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
}

export type NewEgressAuditRecord = Omit<EgressAuditRecord, "id" | "sandboxId">;

export interface EgressAuditRepository {
  append(sandboxId: string, entries: NewEgressAuditRecord[]): Promise<void>;
  /** Newest first; `beforeId` pages back. */
  list(
    sandboxId: string,
    options: { limit: number; beforeId?: number | undefined },
  ): Promise<EgressAuditRecord[]>;
  /** Keeps the newest `keep` rows of the sandbox; returns how many went. */
  prune(sandboxId: string, keep: number): Promise<number>;
}

/** Every repository, bound to the store itself or to one transaction. */
export interface StoreRepositories {
  readonly users: UserRepository;
  readonly apiKeys: ApiKeyRepository;
  readonly sessions: SessionRepository;
  readonly sandboxes: SandboxRepository;
  readonly sandboxLogs: SandboxLogRepository;
  readonly credentials: CredentialRepository;
  readonly gatewayTokens: GatewayTokenRepository;
  readonly usage: UsageRepository;
  readonly runs: RunRepository;
  readonly egressPresets: EgressPresetRepository;
  readonly egressAudit: EgressAuditRepository;
  readonly images: ImageRepository;
  readonly identities: UserIdentityRepository;
  readonly audit: AuditRepository;
  readonly plans: PlanRepository;
  readonly jobRuns: JobRunRepository;
  readonly webhooks: WebhookRepository;
  readonly mcpServers: McpServerRepository;
  readonly nodes: NodeRepository;
  readonly logins: LoginRepository;
}

/**
 * A provider login (a CLI's own sign-in run in a sandbox), as every replica sees it. The live
 * part (the CLI's terminal, the sign-in URL and device code) stays in the memory of `node`, the
 * server that runs it; the row says where that is and how the login ended.
 */
export interface LoginRecord {
  id: string;
  userId: string;
  provider: string;
  sandboxId: string;
  /** The node running the login's CLI. */
  node: string;
  /** The sandbox was made for the login and goes with it. */
  ownsSandbox: boolean;
  state: string;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface LoginRepository {
  /** Creates or replaces the login's row. */
  put(login: LoginRecord): Promise<void>;
  get(id: string): Promise<LoginRecord | undefined>;
  /** The user's logins, newest first. */
  listForUser(userId: string, limit: number): Promise<LoginRecord[]>;
  /** Logins of `node` in one of `states` (the unfinished ones), oldest first. */
  listForNode(node: string, states: readonly string[]): Promise<LoginRecord[]>;
  /** Removes logins last changed before `before`; returns how many went. */
  deleteUpdatedBefore(before: number): Promise<number>;
}

/**
 * A server that hosts sandboxes, as it last registered itself. Each node refreshes its record
 * every few seconds; one whose `expiresAt` has passed stopped answering, and a survivor marks
 * its sandboxes failed.
 */
export interface NodeRecord {
  name: string;
  /** Where other replicas reach it (its internal URL), e.g. `http://10.0.0.5:7420`. */
  url: string;
  /** The drivers it can create sandboxes with. */
  drivers: string[];
  cpuCount: number;
  memoryMb: number;
  /** Its creating and running sandboxes, and the memory they reserve. */
  runningSandboxes: number;
  reservedMemoryMb: number;
  startedAt: number;
  refreshedAt: number;
  expiresAt: number;
}

export interface NodeRepository {
  /** Creates or replaces the node's record. */
  put(node: NodeRecord): Promise<void>;
  get(name: string): Promise<NodeRecord | undefined>;
  /** By name. */
  list(): Promise<NodeRecord[]>;
  /**
   * Removes the node's record only if it is still expired at `now` (a node that came back and
   * refreshed in the meantime keeps its record). True if it was removed.
   */
  removeIfExpired(name: string, now: number): Promise<boolean>;
}

export type JobOutcome = "running" | "succeeded" | "failed";

/**
 * The last run of a background job. `scope` is "" for a cluster-wide job (one record, whichever
 * replica ran it) and the node's name for a per-node job (one record per node).
 */
export interface JobRunRecord {
  job: string;
  scope: string;
  /** The node that ran it. */
  node: string;
  outcome: JobOutcome;
  /** Why it failed (bounded by the runner); null unless `outcome` is "failed". */
  error: string | null;
  startedAt: number;
  /** Null while it runs. */
  endedAt: number | null;
}

export interface JobRunRepository {
  /** Replaces the record of the job in its scope. */
  put(run: JobRunRecord): Promise<void>;
  /** Every record, by job then scope. */
  list(): Promise<JobRunRecord[]>;
}

/**
 * A plan's limits, each per user; an absent one is unlimited. CPU, memory and disk are totals
 * over the user's sandboxes that hold them (CPU and memory: creating and running; disk: every
 * sandbox not destroyed); tokens count input and output since the start of the UTC month.
 */
export interface PlanLimits {
  runningSandboxes?: number | undefined;
  cpu?: number | undefined;
  memoryMb?: number | undefined;
  diskMb?: number | undefined;
  runsPerHour?: number | undefined;
  tokensPerMonth?: number | undefined;
  /** USD since the start of the UTC month, by the operator's model prices (`modelPrices`). */
  costPerMonthUsd?: number | undefined;
  /** Requests per minute per API key (a token bucket on the bus: a burst of this many, refilled at this rate). */
  requestsPerMinute?: number | undefined;
}

export interface PlanRecord {
  name: string;
  description: string;
  limits: PlanLimits;
  createdAt: number;
  updatedAt: number;
}

export interface PlanRepository {
  list(): Promise<PlanRecord[]>;
  get(name: string): Promise<PlanRecord | undefined>;
  /** Creates or replaces the plan (keeping its `createdAt`). */
  put(plan: PlanRecord): Promise<PlanRecord>;
  /** False if there was none; a plan users are on is refused with `conflict`. */
  delete(name: string): Promise<boolean>;
  /** Puts the user on the plan, or (null) back on the default. */
  assign(userId: string, planName: string | null, at: number): Promise<void>;
  /** The plan the user was put on, if any. */
  planOf(userId: string): Promise<string | undefined>;
  /** Users put on each plan, by plan name (plans nobody is on are absent). */
  countAssigned(): Promise<Map<string, number>>;
}

/**
 * Unique-constraint violations surface as `PolydevError("conflict")` naming the field; the
 * store generates no ids except log and usage row numbers.
 */
export interface Store extends StoreRepositories {
  /**
   * Runs `fn` in one database transaction: committed when it resolves, rolled back when it
   * throws (the error is rethrown). Inside `fn` use only the repositories passed in: on SQLite
   * the store's one connection belongs to the transaction, so a call on the outer store would
   * wait for `fn` forever.
   */
  transaction<T>(fn: (tx: StoreRepositories) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** `git_token`: a git host's token (provider `git:<host>`), used by the host-side git relay and forge API only. */
export type CredentialKind = "api_key" | "oauth" | "git_token";

export interface CredentialRecord {
  id: string;
  userId: string;
  provider: string;
  kind: CredentialKind;
  /** Vault record; never the plaintext. */
  sealed: string;
  keyId: string;
  /** Non-secret facts (token expiry, account label). */
  metadata: Record<string, string>;
  createdAt: number;
  updatedAt: number;
  lastUsedAt: number | null;
  lastValidatedAt: number | null;
  valid: boolean | null;
}

export interface CredentialRepository {
  /** One credential per user and provider: storing again replaces it. */
  upsert(
    record: Omit<CredentialRecord, "lastUsedAt" | "lastValidatedAt" | "valid" | "updatedAt">,
  ): Promise<CredentialRecord>;
  get(userId: string, provider: string): Promise<CredentialRecord | undefined>;
  listForUser(userId: string): Promise<CredentialRecord[]>;
  listAll(): Promise<CredentialRecord[]>;
  delete(userId: string, provider: string): Promise<boolean>;
  markUsed(id: string, at: number): Promise<void>;
  markValidated(id: string, at: number, valid: boolean): Promise<void>;
  /** Compare-and-set on the sealed value, so a rotation never overwrites a newer secret. */
  replaceSealed(id: string, previous: string, sealed: string, keyId: string): Promise<boolean>;
  countByKeyId(keyId: string): Promise<number>;
}

export interface GatewayTokenRecord {
  tokenHash: string;
  sandboxId: string;
  userId: string;
  createdAt: number;
}

export interface GatewayTokenRepository {
  create(record: GatewayTokenRecord): Promise<void>;
  findByHash(tokenHash: string): Promise<GatewayTokenRecord | undefined>;
}

export interface UsageEntry {
  userId: string;
  sandboxId: string;
  provider: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  status: number;
  at: number;
}

export interface UsageSummaryRow {
  provider: string;
  model: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
}

export interface UsageRepository {
  record(entry: UsageEntry): Promise<void>;
  summary(options: { userId?: string; since?: number }): Promise<UsageSummaryRow[]>;
  /** Every user's usage summed per provider, by provider name. */
  totalsByProvider(options: { since?: number }): Promise<Omit<UsageSummaryRow, "model">[]>;
  /**
   * Folds the raw rows of hours that ended by `before` (rounded down to the hour) into hourly
   * sums, in one transaction; answers how many raw rows it folded. Totals whose `since` is on an
   * hour boundary answer the same before and after.
   */
  rollUp(before: number): Promise<number>;
}

export interface RunRecord {
  id: string;
  userId: string;
  sandboxId: string;
  groupId: string | null;
  agent: string;
  prompt: string;
  model: string | null;
  cwd: string;
  state: string;
  exitReason: string | null;
  finalText: string | null;
  inputTokens: number;
  outputTokens: number;
  timeoutMs: number;
  maxTurns: number | null;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

export interface StoredRunEvent {
  runId: string;
  seq: number;
  at: number;
  body: string;
  raw: string | null;
}

/** One file a run changed, as `git diff --name-status` names it (A added, M modified, D deleted, R renamed, …). */
export interface ChangedFile {
  path: string;
  status: string;
}

/**
 * What a run in a project changed: the diff of its working copy against the commit it started
 * from, and the check run in that copy at the end. Everything here came out of the sandbox and is
 * bounded before it is stored (`diffTruncated`, `filesTruncated` say a bound cut it).
 */
export interface RunChangesRecord {
  runId: string;
  /** The project folder (relative to the sandbox home) the run worked on. */
  project: string;
  /**
   * The sandbox holding that project as it was before the run (a group's run may work in a fork
   * of it): where a kept change lands. Absent in records written before keeping existed.
   */
  projectSandboxId?: string | undefined;
  baseCommit: string | null;
  files: ChangedFile[];
  filesTruncated: boolean;
  diff: string;
  diffTruncated: boolean;
  check: { command: string; exitCode: number | null; output: string; outputTruncated: boolean } | null;
  /** Why nothing could be recorded (the sandbox went away, git failed), else null. */
  error: string | null;
  recordedAt: number;
}

/** A run's change kept in its project: a commit on a branch, maybe merged, pushed, proposed. */
export interface RunKeepRecord {
  runId: string;
  groupId: string | null;
  branch: string;
  commit: string;
  /** The branch was fast-forwarded or merged into the project's current branch. */
  merged: boolean;
  pushed: boolean;
  pullRequestUrl: string | null;
  keptAt: number;
}

/**
 * What a run needs to take another turn: the CLI's session id, or the built-in agent's message
 * history (provider-native JSON, bounded by the server), and what its events have used so far.
 */
export interface RunConversationRecord {
  runId: string;
  /** Turns taken: 1 after the first prompt, +1 per follow-up. */
  turns: number;
  /** The CLI's session id (claude, codex, gemini), null when its output named none. */
  sessionId: string | null;
  /** The built-in agent's messages as JSON; null when it has none or they passed their bound. */
  history: string | null;
  /** Bytes of events stored over all turns: the bound on a run's events covers every turn. */
  eventBytes: number;
  /** The MCP servers (names) the run's first turn got; a follow-up gets those still configured. */
  mcpServers: string[];
  updatedAt: number;
}

export interface RunRepository {
  insert(run: RunRecord): Promise<void>;
  /** Creates or replaces the keep recorded for a run. */
  putKeep(keep: RunKeepRecord): Promise<void>;
  getKeep(runId: string): Promise<RunKeepRecord | undefined>;
  /** The keeps of a group's runs, oldest first. */
  keepsOfGroup(groupId: string): Promise<RunKeepRecord[]>;
  /** Creates or replaces the changes recorded for a run. */
  putChanges(changes: RunChangesRecord): Promise<void>;
  getChanges(runId: string): Promise<RunChangesRecord | undefined>;
  get(id: string): Promise<RunRecord | undefined>;
  getForUser(userId: string, id: string): Promise<RunRecord | undefined>;
  /** Newest first; `groupId` keeps only the runs of that group. */
  listForUser(
    userId: string,
    options: { limit: number; cursor?: string | undefined; groupId?: string | undefined },
  ): Promise<Page<RunRecord>>;
  listByStates(states: string[]): Promise<RunRecord[]>;
  /** The runs of one group, oldest first. */
  listByGroup(groupId: string): Promise<RunRecord[]>;
  /** Compare-and-set on the state, like sandboxes. */
  transition(
    id: string,
    from: string[],
    to: string,
    patch: Partial<RunRecord>,
  ): Promise<RunRecord | undefined>;
  /** Runs created at or after `since`, counted per hour (`hourStart` is epoch ms), oldest first; empty hours are absent. */
  countPerHour(since: number): Promise<{ hourStart: number; count: number }[]>;
  /** The user's runs created at or after `since` (epoch ms). */
  countForUserSince(userId: string, since: number): Promise<number>;
  appendEvent(event: StoredRunEvent): Promise<void>;
  events(runId: string, afterSeq: number, limit: number): Promise<StoredRunEvent[]>;
  /** The highest sequence number stored for the run's events, 0 when it has none. */
  lastEventSeq(runId: string): Promise<number>;
  /** The runs of one of the user's groups, oldest first (empty for a foreign or unknown group). */
  listForGroup(userId: string, groupId: string): Promise<RunRecord[]>;
  /** Creates or replaces a run's conversation state. */
  putConversation(conversation: RunConversationRecord): Promise<void>;
  getConversation(runId: string): Promise<RunConversationRecord | undefined>;
}

export type ImageState = "building" | "ready" | "failed";
export type ImageSource = "base" | "import" | "pull" | "dockerfile" | "snapshot";

/** What an image says about how its processes run. */
export interface ImageConfig {
  env: Record<string, string>;
  workdir?: string | undefined;
  user?: string | undefined;
  cmd?: string[] | undefined;
  entrypoint?: string[] | undefined;
}

/**
 * A named image. `ownerId` null is a system image (`polydev/base`), visible to everyone; names are
 * unique per owner. `layers` are image layer ids, base first.
 */
export interface ImageRecord {
  id: string;
  ownerId: string | null;
  name: string;
  /** sha256 of the layer list and config; null until a build is ready. */
  digest: string | null;
  state: ImageState;
  layers: string[];
  config: ImageConfig;
  sizeBytes: number;
  source: ImageSource;
  /** The build's log, the newest part kept (bounded by the writer). */
  buildLog: string;
  error: string | null;
  createdAt: number;
  updatedAt: number;
}

export type NewImage = Omit<ImageRecord, "updatedAt">;

/** An unpacked layer directory of the image store; `id` is the hex of the layer's content key. */
export interface ImageLayerRecord {
  id: string;
  dir: string;
  sizeBytes: number;
  createdAt: number;
}

export interface ImageRepository {
  /** A name already taken by the same owner is a `conflict` naming `name`. */
  insert(image: NewImage): Promise<ImageRecord>;
  get(id: string): Promise<ImageRecord | undefined>;
  /** The owner's image of that name (`ownerId` null: the system image). */
  getByName(ownerId: string | null, name: string): Promise<ImageRecord | undefined>;
  /** The user's own images and every system image, by name. */
  listVisible(userId: string): Promise<ImageRecord[]>;
  /** Every image of every owner (garbage collection, start-up recovery). */
  listAll(): Promise<ImageRecord[]>;
  update(
    id: string,
    patch: Partial<
      Pick<ImageRecord, "digest" | "state" | "layers" | "config" | "sizeBytes" | "buildLog" | "error">
    > & { updatedAt: number },
  ): Promise<ImageRecord | undefined>;
  delete(id: string): Promise<boolean>;
  /** Sandboxes made from the image digest that are not destroyed. */
  countSandboxesUsing(digest: string): Promise<number>;
  /** Creates or keeps (an existing id is left as is) a layer record. */
  putLayer(layer: ImageLayerRecord): Promise<ImageLayerRecord>;
  getLayer(id: string): Promise<ImageLayerRecord | undefined>;
  listLayers(): Promise<ImageLayerRecord[]>;
  deleteLayer(id: string): Promise<boolean>;
}

/** A user's webhook endpoint. The signing secret is only ever stored sealed by the vault. */
export interface WebhookRecord {
  id: string;
  userId: string;
  url: string;
  /** The event types it receives (never empty: "all" is spelled out at creation). */
  events: string[];
  sealedSecret: string;
  createdAt: number;
}

export type WebhookDeliveryState = "pending" | "delivered" | "failed";

/**
 * One event to deliver to one webhook, retried until it is delivered or its attempts run out.
 * `eventKey` names the event ("run.finished:run_x"): a webhook gets each event at most once,
 * however many replicas noticed it.
 */
export interface WebhookDeliveryRecord {
  id: string;
  webhookId: string;
  userId: string;
  event: string;
  eventKey: string;
  /** The JSON body sent (built by the server, bounded). */
  payload: string;
  state: WebhookDeliveryState;
  attempts: number;
  /** When the next attempt is due; null once delivered or failed for good. */
  nextAttemptAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface WebhookRepository {
  insert(webhook: WebhookRecord): Promise<void>;
  get(id: string): Promise<WebhookRecord | undefined>;
  listForUser(userId: string): Promise<WebhookRecord[]>;
  countForUser(userId: string): Promise<number>;
  /** Deletes the webhook and its deliveries; false if the user has no such webhook. */
  delete(userId: string, id: string): Promise<boolean>;
  /** False (and nothing written) when the webhook already has a delivery with this eventKey. */
  enqueue(delivery: WebhookDeliveryRecord): Promise<boolean>;
  /** Pending deliveries due at `now`, oldest due first. */
  due(now: number, limit: number): Promise<WebhookDeliveryRecord[]>;
  /** Records an attempt's outcome, only if the delivery is still pending after `attempts - 1` tries. */
  recordAttempt(
    id: string,
    outcome: Pick<
      WebhookDeliveryRecord,
      "state" | "attempts" | "nextAttemptAt" | "lastStatus" | "lastError" | "updatedAt"
    >,
  ): Promise<boolean>;
  /** The webhook's deliveries, newest first. */
  deliveries(webhookId: string, limit: number): Promise<WebhookDeliveryRecord[]>;
  /** Drops finished deliveries last updated before `before`; the number dropped. */
  pruneFinished(before: number): Promise<number>;
  /** Every user's webhooks (master-key rotation re-wraps their secrets). */
  listAll(): Promise<WebhookRecord[]>;
  /** Compare-and-set on the sealed secret, so a rotation never overwrites a newer one. */
  replaceSecret(id: string, previous: string, sealed: string): Promise<boolean>;
}

export type McpTransport = "stdio" | "http" | "sse";

/**
 * An MCP server a user configured for their agents. Env and header values may hold secrets: they
 * are stored only inside `sealed` (the vault's record of a JSON object `{env, headers}`);
 * `envNames` and `headerNames` list their names for display.
 */
export interface McpServerRecord {
  id: string;
  userId: string;
  name: string;
  transport: McpTransport;
  command: string | null;
  args: string[];
  url: string | null;
  envNames: string[];
  headerNames: string[];
  sealed: string | null;
  createdAt: number;
}

export interface McpServerRepository {
  /** A name the user already uses is a `conflict` naming `name`. */
  insert(server: McpServerRecord): Promise<void>;
  listForUser(userId: string): Promise<McpServerRecord[]>;
  countForUser(userId: string): Promise<number>;
  delete(userId: string, name: string): Promise<boolean>;
  /** Every user's MCP servers (master-key rotation re-wraps their secrets). */
  listAll(): Promise<McpServerRecord[]>;
  /** Compare-and-set on the sealed values, as for credentials. */
  replaceSealed(id: string, previous: string, sealed: string): Promise<boolean>;
}
