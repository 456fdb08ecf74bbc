import { Duplex, PassThrough } from "node:stream";
import type { AgentConnection, SandboxLauncher } from "@polydev/core";
import { connectAgent } from "./client.js";
import { createAgentServer } from "./server.js";

/** Two connected duplex ends (Node 20 has no `duplexPair`). */
export function duplexPair(): [Duplex, Duplex] {
  const aToB = new PassThrough();
  const bToA = new PassThrough();
  return [Duplex.from({ readable: bToA, writable: aToB }), Duplex.from({ readable: aToB, writable: bToA })];
}

/**
 * An agent serving a sandbox from the host edge, joined to its client by an in-memory stream:
 * the same protocol as a remote agent, at the cost of a few buffer copies.
 */
export async function createInProcessAgent(launcher: SandboxLauncher): Promise<AgentConnection> {
  const [clientEnd, serverEnd] = duplexPair();
  const served = createAgentServer(launcher).serve(serverEnd);
  const connection = await connectAgent(clientEnd);
  const close = connection.close.bind(connection);
  connection.close = async () => {
    await close();
    served.close();
  };
  return connection;
}
