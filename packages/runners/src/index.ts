import type { RunAgent } from "@polydev/core";
import { claudeRunner } from "./claude.js";
import { codexRunner } from "./codex.js";
import { geminiRunner } from "./gemini.js";
import type { AgentRunner } from "./runner.js";

export type { AgentRunner, Invocation, ProviderName, RunRequest } from "./runner.js";
export { claudeRunner, codexRunner, geminiRunner };

/** The CLI runners by agent name ("builtin" runs in the server, not as a CLI). */
export const CLI_RUNNERS: Partial<Record<RunAgent, AgentRunner>> = {
  claude: claudeRunner,
  codex: codexRunner,
  gemini: geminiRunner,
};
export type { LoopResult, ModelLoopOptions } from "./builtin/index.js";
export {
  anthropicLoop,
  geminiLoop,
  MAX_MCP_TOOLS_PER_SERVER,
  McpTools,
  mcpToolName,
  openaiLoop,
  SandboxTools,
  TOOL_SPECS,
} from "./builtin/index.js";
export type { McpServerSpec } from "./mcp-config.js";
export { CLAUDE_MCP_CONFIG, withMcpServers } from "./mcp-config.js";
