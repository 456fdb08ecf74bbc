export type { components, paths } from "./api-types.js";
export type {
  CallOptions,
  CreateRun,
  CreateSandbox,
  ExecEvent,
  ExecRequest,
  ExecResult,
  PolydevOptions,
  Run,
  RunEvent,
  Sandbox,
} from "./client.js";
export { Polydev } from "./client.js";
export {
  ConflictError,
  errorFromResponse,
  ForbiddenError,
  InvalidRequestError,
  LimitExceededError,
  NotFoundError,
  PathOutsideHomeError,
  PolydevApiError,
  SandboxNotRunningError,
  UnauthorizedError,
} from "./errors.js";
export type { Login, LoginProvider } from "./logins.js";
export type { PtyExit, PtyOptions, WebSocketConstructor, WebSocketLike } from "./pty.js";
export { PtySession } from "./pty.js";
