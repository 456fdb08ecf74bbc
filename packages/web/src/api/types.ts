/** API shapes the dashboard reads: the SDK's generated schemas where they exist. */
import type { components, SessionInfo } from "@polydev/sdk";

export type { Sandbox } from "@polydev/sdk";
export type FileEntry = components["schemas"]["FileEntry"];
export type Credential = components["schemas"]["Credential"];
export type Login = components["schemas"]["Login"];
export type Run = components["schemas"]["Run"];
export type { AddProject, CreateSandbox, Image, ImageDetail, Project, RunChanges } from "@polydev/sdk";

export const PROVIDERS = ["anthropic", "openai", "gemini"] as const;
export type Provider = (typeof PROVIDERS)[number];
/** Logins are named by the CLI that runs them; each stores the credential of its provider. */
export const LOGIN_PROVIDERS = ["claude", "codex", "gemini"] as const;
export type LoginProvider = (typeof LOGIN_PROVIDERS)[number];
export const AGENTS = ["claude", "codex", "gemini", "builtin"] as const;
export type Agent = (typeof AGENTS)[number];
export const FINAL_RUN_STATES: readonly string[] = ["succeeded", "failed", "cancelled", "timed_out"];
export const FINAL_LOGIN_STATES: readonly string[] = ["completed", "failed", "timed_out", "cancelled"];

export type Session = SessionInfo;
export type SessionUser = SessionInfo["user"];
export type {
  AdminSandbox,
  AdminStats,
  ApiKey,
  AuditEvent,
  AuditQuery,
  CreateApiKey,
  JobRun,
  User as AdminUser,
} from "@polydev/sdk";

/** One event of a run's stream, as `GET /v1/runs/:id/events` sends it. */
export type RunEvent = { seq: number; at: string } & (
  | { type: "status"; state: string; message?: string }
  | { type: "text"; delta: string }
  | { type: "tool_call"; id: string; name: string; input: unknown }
  | { type: "tool_result"; id: string; output: string; isError: boolean }
  | { type: "usage"; inputTokens: number; outputTokens: number; model?: string }
  | { type: "error"; message: string }
  | { type: "done"; finalText: string; exitReason: string }
  /** A follow-up the user sent: it opens the run's next turn. */
  | { type: "user"; prompt: string; turn: number }
);
export const RUN_EVENT_TYPES = [
  "status",
  "text",
  "tool_call",
  "tool_result",
  "usage",
  "error",
  "done",
  "user",
] as const;
