export type { components, paths } from "./api-types.js";
export type {
  AddProject,
  AdminSandbox,
  AdminStats,
  ApiKey,
  AuditEvent,
  AuditQuery,
  CallOptions,
  CreateApiKey,
  CreateRun,
  CreateSandbox,
  CreateUser,
  ExecEvent,
  ExecRequest,
  ExecResult,
  ForkSandbox,
  GitCredential,
  JobRun,
  KeepRun,
  Plan,
  PlanLimits,
  PolydevEvent,
  PolydevOptions,
  Project,
  PutGitCredential,
  Quota,
  Run,
  RunChanges,
  RunEvent,
  RunKeep,
  RunTurn,
  Sandbox,
  SandboxListQuery,
  SessionInfo,
  SignIn,
  UpdateSandbox,
  User,
} from "./client.js";
export { Polydev } from "./client.js";
export {
  ConflictError,
  CredentialMissingError,
  CsrfFailedError,
  errorFromResponse,
  FeatureUnavailableError,
  ForbiddenError,
  InvalidCredentialsError,
  InvalidRequestError,
  InvalidTokenError,
  LimitExceededError,
  NameTakenError,
  NotFoundError,
  PathOutsideHomeError,
  PolydevApiError,
  QuotaExceededError,
  RunInProgressError,
  SandboxGoneError,
  SandboxNotRunningError,
  TooManyAttemptsError,
  UnauthorizedError,
} from "./errors.js";
export type {
  CreatedWebhook,
  CreateMcpServer,
  CreateWebhook,
  McpServer,
  Webhook,
  WebhookDelivery,
} from "./hooks.js";
export type { BuildImage, Image, ImageDetail } from "./images.js";
export type { Login, LoginProvider } from "./logins.js";
export type {
  EgressAuditEvent,
  EgressPolicy,
  EgressRule,
  NetworkPreset,
  NetworkSetting,
  NetworkUpdate,
  PutNetworkPreset,
  SandboxNetwork,
  UserNetworkDefault,
} from "./network.js";
export type { ListeningPort, PreviewLink, PreviewLinkOptions } from "./ports.js";
export type { BackgroundProcess, ProcessSignal, StartProcess } from "./processes.js";
export type { PtyExit, PtyOptions, WebSocketConstructor, WebSocketLike } from "./pty.js";
export { PtySession } from "./pty.js";
export type { SandboxLogs, SandboxStats } from "./sandbox-insight.js";
