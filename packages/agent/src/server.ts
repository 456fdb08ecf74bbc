/**
 * The agent's serving side: one connection, many channels, one operation per channel. Every
 * process is started through the sandbox's launcher, so this code is the same whether it runs
 * at the host edge (namespace driver) or inside a guest (identity launcher).
 */
import type { Duplex } from "node:stream";
import type { SandboxLauncher } from "@polydev/core";
import { AGENT_PROTOCOL_VERSION, PolydevError } from "@polydev/core";
import {
  attachBackgroundOperation,
  getBackgroundOperation,
  listBackgroundOperation,
  signalBackgroundOperation,
  startBackgroundOperation,
} from "./background-operations.js";
import type { Channel, ControlMessage } from "./channel.js";
import { execOperation } from "./exec-operation.js";
import {
  listOperation,
  mkdirOperation,
  readOperation,
  removeOperation,
  renameOperation,
  statOperation,
  writeOperation,
} from "./file-operations.js";
import { egressInterceptOperation, forwardInOperation, forwardOutOperation } from "./forward-operations.js";
import { AGENT_VERSION, serverHello, versionMismatch } from "./hello.js";
import { Mux } from "./mux.js";
import type { Operation, OperationContext } from "./operation.js";
import { fail } from "./operation.js";
import { pingOperation } from "./ping-operation.js";
import { ptyOperation } from "./pty-operation.js";
import { watchOperation } from "./watch-operation.js";
import { toWireError } from "./wire-error.js";

export interface AgentServerOptions {
  /** Reported in the hello; default: this package's agent version. */
  agentVersion?: string;
}

export interface AgentServer {
  /** Serves one connection until either side closes it; closing ends its exec and PTY processes. */
  serve(stream: Duplex): { close(): void };
}

const OPERATIONS: Readonly<Record<string, Operation>> = Object.freeze({
  ping: pingOperation,
  exec: execOperation,
  pty: ptyOperation,
  "files.stat": statOperation,
  "files.list": listOperation,
  "files.read": readOperation,
  "files.write": writeOperation,
  "files.mkdir": mkdirOperation,
  "files.remove": removeOperation,
  "files.rename": renameOperation,
  "files.watch": watchOperation,
  "bg.start": startBackgroundOperation,
  "bg.list": listBackgroundOperation,
  "bg.get": getBackgroundOperation,
  "bg.attach": attachBackgroundOperation,
  "bg.signal": signalBackgroundOperation,
  "forward.in": forwardInOperation,
  "forward.out": forwardOutOperation,
  "egress.intercept": egressInterceptOperation,
});

export function createAgentServer(launcher: SandboxLauncher, options: AgentServerOptions = {}): AgentServer {
  const agentVersion = options.agentVersion ?? AGENT_VERSION;
  return {
    serve(stream) {
      const context: OperationContext = Object.freeze({
        launcher,
        openChannel: (request: ControlMessage) => mux.open(request),
      });
      const mux: Mux = new Mux(
        stream,
        {
          onHello: (hello) => {
            if (hello.protocolVersion === AGENT_PROTOCOL_VERSION) return;
            mux.connectionControl(toWireError(versionMismatch("caller", hello.protocolVersion)));
            mux.close();
          },
          onOpen: (channel, request) => runOperation(context, channel, request),
        },
        "server",
      );
      mux.hello(serverHello(agentVersion, { home: launcher.home, user: launcher.baseEnv.USER ?? "user" }));
      return { close: () => mux.close() };
    },
  };
}

function runOperation(context: OperationContext, channel: Channel, request: ControlMessage): void {
  const operation = Object.hasOwn(OPERATIONS, request.type) ? OPERATIONS[request.type] : undefined;
  if (operation === undefined) {
    fail(channel, new PolydevError("invalid_request", `the agent has no operation "${request.type}"`));
    return;
  }
  try {
    const running = operation(context, channel, request);
    if (running !== undefined) running.catch((error: unknown) => fail(channel, error));
  } catch (error) {
    fail(channel, error);
  }
}
