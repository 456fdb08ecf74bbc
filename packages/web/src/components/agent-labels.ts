import type { Agent } from "../api/types";

export const AGENT_LABELS: Record<Agent, string> = {
  claude: "Claude Code",
  codex: "Codex",
  gemini: "Gemini CLI",
  builtin: "Built-in agent",
};

export function agentLabel(agent: string): string {
  return (AGENT_LABELS as Record<string, string>)[agent] ?? agent;
}
