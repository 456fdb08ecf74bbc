export { anthropicLoop } from "./anthropic-loop.js";
export { geminiLoop } from "./gemini-loop.js";
export type { LoopResult, ModelLoopOptions } from "./loop.js";
export { openaiLoop } from "./openai-loop.js";
export { SandboxTools, TOOL_SPECS } from "./tools.js";
