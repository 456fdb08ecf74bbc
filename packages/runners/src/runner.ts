import type { OutputParser, RunAgent } from "@polydev/core";

export interface RunRequest {
  prompt: string;
  model?: string | undefined;
  maxTurns?: number | undefined;
  /** The sandbox's loopback port of the provider gateway. */
  gatewayPort: number;
  /**
   * A follow-up: the CLI's session (as its parser's sessionId() read it from the first turn) is
   * resumed with the CLI's own flag, in the same working directory, so the model sees the history.
   */
  resumeSessionId?: string | undefined;
}

/** What to run inside the sandbox for one agent run. */
export interface Invocation {
  argv: string[];
  env: Record<string, string>;
  /** Config files written (mode 600) into the home before the run, relative to it. */
  files: Record<string, string>;
}

/** The provider APIs an agent talks to, as the gateway and the credential store name them. */
export type ProviderName = "anthropic" | "openai" | "gemini";

export interface AgentRunner {
  readonly agent: RunAgent;
  /** Whose credential the CLI needs: a run is refused up front when the owner stored none. */
  readonly provider: ProviderName;
  invocation(request: RunRequest): Invocation;
  parser(): OutputParser;
}

export type Json = Record<string, unknown>;
export const obj = (value: unknown): Json | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
export const arr = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
export const str = (value: unknown): string => (typeof value === "string" ? value : "");
export const num = (value: unknown): number => (typeof value === "number" ? value : 0);

export function parseLine(text: string): Json | undefined {
  try {
    return obj(JSON.parse(text));
  } catch {
    return undefined;
  }
}
