import type { AgentConnection, SandboxLauncher } from "@polydev/core";
import { connectAgent } from "./connect.js";
import { duplexPair } from "./duplex-pair.js";
import { createAgentServer } from "./server.js";

/**
 * An agent serving a sandbox from the host edge, joined to its caller by an in-memory stream:
 * the same protocol (framing, flow control) as a remote agent, at the cost of a few copies.
 */
export async function createInProcessAgent(launcher: SandboxLauncher): Promise<AgentConnection> {
  const [callerEnd, agentEnd] = duplexPair();
  createAgentServer(launcher).serve(agentEnd);
  // Closing the caller's end ends the agent's too, which ends its exec and PTY processes.
  return connectAgent(callerEnd);
}
