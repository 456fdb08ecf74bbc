export { ERROR_STATUS, PolydevError, isPolydevError, notFound } from "./errors.js";
export type { ErrorCode, PolydevErrorOptions } from "./errors.js";
export { NETWORK_MODES, SANDBOX_STATES } from "./sandbox.js";
export type {
  NetworkMode,
  ObservedSandbox,
  SandboxHandle,
  SandboxLimits,
  SandboxSpec,
  SandboxState,
  SandboxStats,
} from "./sandbox.js";
export { AGENT_PROTOCOL_VERSION } from "./agent.js";
export type {
  AgentConnection,
  AgentFiles,
  AgentHello,
  AttachOptions,
  BackgroundProcessInfo,
  BackgroundRequest,
  ExecProcess,
  ExecRequest,
  ExitInfo,
  FileEntry,
  FileType,
  FileWatchEvent,
  PtyProcess,
  PtyRequest,
} from "./agent.js";
export type { DriverInfo, SandboxDriver } from "./driver.js";
export type { Clock } from "./clock.js";
export { systemClock } from "./clock.js";
export type { LaunchCommand, LaunchRequest, SandboxLauncher } from "./launcher.js";
