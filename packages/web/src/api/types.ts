/** API shapes the dashboard reads: the SDK's generated schemas where they exist. */
import type { components } from "@polydev/sdk";

export type Sandbox = components["schemas"]["Sandbox"];
export type FileEntry = components["schemas"]["FileEntry"];
export type Credential = components["schemas"]["Credential"];
export type Login = components["schemas"]["Login"];
export type Run = components["schemas"]["Run"];
export type CreateSandbox = components["schemas"]["CreateSandbox"];

export const PROVIDERS = ["anthropic", "openai", "gemini"] as const;
export type Provider = (typeof PROVIDERS)[number];
export const AGENTS = ["claude", "codex", "gemini", "builtin"] as const;
export type Agent = (typeof AGENTS)[number];
export const FINAL_RUN_STATES: readonly string[] = ["succeeded", "failed", "cancelled", "timed_out"];
export const FINAL_LOGIN_STATES: readonly string[] = ["completed", "failed", "timed_out", "cancelled"];

export interface SessionUser {
  id: string;
  name: string;
  role: "admin" | "user";
}

export interface Session {
  user: SessionUser;
  csrfToken: string;
}

export interface SandboxStats {
  cpuUsageNs: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  pids: number;
  diskBytes: number;
}

export interface SandboxLogs {
  items: { id: number; at: string; level: string; source: string; message: string }[];
  console: string | null;
}

export interface AdminUser {
  id: string;
  name: string;
  role: "admin" | "user";
  createdAt: string;
}

export interface AdminStats {
  users: number;
  sandboxesByState: Record<string, number>;
  runsPerHour: { hour: string; count: number }[];
  usageByProvider: { provider: string; requests: number; inputTokens: number; outputTokens: number }[];
}

/** One event of a run's stream, as `GET /v1/runs/:id/events` sends it. */
export type RunEvent = { seq: number; at: string } & (
  | { type: "status"; state: string; message?: string }
  | { type: "text"; delta: string }
  | { type: "tool_call"; id: string; name: string; input: unknown }
  | { type: "tool_result"; id: string; output: string; isError: boolean }
  | { type: "usage"; inputTokens: number; outputTokens: number; model?: string }
  | { type: "error"; message: string }
  | { type: "done"; finalText: string; exitReason: string }
);
export const RUN_EVENT_TYPES = [
  "status",
  "text",
  "tool_call",
  "tool_result",
  "usage",
  "error",
  "done",
] as const;
