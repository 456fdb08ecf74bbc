export { AgentClient, connectAgent } from "./client.js";
export { createInProcessAgent, duplexPair } from "./in-process.js";
export { identityLauncher } from "./launchers.js";
export { WINDOW_BYTES } from "./mux.js";
export type { AgentServer } from "./server.js";
export { AGENT_VERSION, CAPABILITIES, createAgentServer } from "./server.js";
