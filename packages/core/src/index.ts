export type {
  AgentConnection,
  AgentFiles,
  AgentHello,
  AttachOptions,
  BackgroundProcessInfo,
  BackgroundRequest,
  EgressDestination,
  ExecProcess,
  ExecRequest,
  ExitInfo,
  FileEntry,
  FileType,
  FileWatchEvent,
  ForwardedPort,
  PtyProcess,
  PtyRequest,
} from "./agent.js";
export { AGENT_PROTOCOL_VERSION } from "./agent.js";
export type {
  BucketTake,
  Bus,
  BusEvent,
  BusLease,
  BusLimits,
  BusSubscription,
  SubscribeOptions,
  TokenBucket,
} from "./bus.js";
export { BUS_BEGINNING, compareEventIds, DEFAULT_BUS_LIMITS } from "./bus.js";
export {
  checkBucket,
  checkBusName,
  checkEventData,
  checkEventId,
  checkIncrement,
  checkTtl,
} from "./bus-checks.js";
export type { Clock } from "./clock.js";
export { systemClock } from "./clock.js";
export type { DriverInfo, SandboxDriver } from "./driver.js";
export type { DriverSetMember } from "./driver-set.js";
export { DriverSet } from "./driver-set.js";
export type { ErrorCode, PolydevErrorOptions } from "./errors.js";
export { ERROR_STATUS, isPolydevError, notFound, PolydevError } from "./errors.js";
export { HandedOverConnections } from "./handed-over-connections.js";
export type { InProcessBusOptions } from "./in-process-bus.js";
export { InProcessBus } from "./in-process-bus.js";
export type {
  BackgroundLauncher,
  LaunchedExit,
  LaunchedProcess,
  LaunchRequest,
  PortListener,
  SandboxLauncher,
} from "./launcher.js";
export type { OutputParser, RunAgent, RunEvent, RunEventBody, RunState } from "./run.js";
export { FINAL_RUN_STATES, RUN_AGENTS, RUN_STATES } from "./run.js";
export type {
  NetworkMode,
  ObservedSandbox,
  SandboxHandle,
  SandboxImage,
  SandboxLimits,
  SandboxSpec,
  SandboxState,
  SandboxStats,
} from "./sandbox.js";
export { NETWORK_MODES, SANDBOX_STATES } from "./sandbox.js";
export type {
  ApiKeyRecord,
  ApiKeyRepository,
  ChangedFile,
  CredentialKind,
  CredentialRecord,
  CredentialRepository,
  GatewayTokenRecord,
  GatewayTokenRepository,
  LogLevel,
  LogSource,
  NewSandbox,
  NewSandboxLogEntry,
  Page,
  RunChangesRecord,
  RunConversationRecord,
  RunKeepRecord,
  RunRecord,
  RunRepository,
  SandboxLogEntry,
  SandboxLogRepository,
  SandboxRecord,
  SandboxRepository,
  Store,
  StoredRunEvent,
  UsageEntry,
  UsageRepository,
  UsageSummaryRow,
  UserRecord,
  UserRepository,
  UserRole,
} from "./store.js";
export type { SecretOwner, Vault } from "./vault.js";

// Biome sorts exports only within a run of them; this comment starts a new run, so additions
// appended below never reorder (or conflict with) the list above.

export type { EgressPolicy, NetworkChoice } from "./sandbox.js";
// Webhooks and MCP servers (issue 12).
export type {
  AuditEvent,
  AuditFilter,
  AuditOutcome,
  AuditRepository,
  EgressAuditRecord,
  EgressAuditRepository,
  EgressPresetRecord,
  EgressPresetRepository,
  ImageConfig,
  ImageLayerRecord,
  ImageRecord,
  ImageRepository,
  ImageSource,
  ImageState,
  JobOutcome,
  JobRunRecord,
  JobRunRepository,
  LoginRecord,
  LoginRepository,
  McpServerRecord,
  McpServerRepository,
  McpTransport,
  NewAuditEvent,
  NewEgressAuditRecord,
  NewImage,
  NodeRecord,
  NodeRepository,
  PlanLimits,
  PlanRecord,
  PlanRepository,
  SessionRecord,
  SessionRepository,
  StoreRepositories,
  UserIdentityRecord,
  UserIdentityRepository,
  WebhookDeliveryRecord,
  WebhookDeliveryState,
  WebhookRecord,
  WebhookRepository,
} from "./store.js";
