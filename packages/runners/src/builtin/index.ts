export { anthropicLoop } from "./anthropic-loop.js";
export { geminiLoop } from "./gemini-loop.js";
export type { LoopResult, ModelLoopOptions } from "./loop.js";
export { MAX_MCP_TOOLS_PER_SERVER, McpTools, mcpToolName } from "./mcp-tools.js";
export { openaiLoop } from "./openai-loop.js";
export { SandboxTools, TOOL_SPECS } from "./tools.js";
