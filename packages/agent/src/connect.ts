import type { Duplex } from "node:stream";
import type { AgentConnection } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Channel, ControlMessage } from "./channel.js";
import { AgentClient } from "./client.js";
import { acceptedListener } from "./forward-operations.js";
import { clientHello, parseServerHello } from "./hello.js";
import { Mux } from "./mux.js";
import { aborted, connectionClosed, fromWireError } from "./wire-error.js";

export interface ConnectAgentOptions {
  signal?: AbortSignal;
  /** How long to wait for the agent's hello; default 10 000 ms. */
  helloTimeoutMs?: number;
}

/**
 * Speaks the agent protocol over `stream`: waits for the agent's hello, rejects an agent whose
 * protocol version differs (`driver_unavailable`), and answers with its own hello.
 *
 * @example
 * const agent = await connectAgent(socket, { helloTimeoutMs: 5_000 });
 * const process = await agent.exec({ argv: ["echo", "hi"] });
 */
export function connectAgent(stream: Duplex, options: ConnectAgentOptions = {}): Promise<AgentConnection> {
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
  const signal = options.signal;
  // Why the connection ended, once it has: later calls fail with this instead of a generic error.
  let closeReason: PolydevError | undefined;
  const closedError = (): PolydevError => closeReason ?? connectionClosed();
  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  // Channels the agent opens: connections accepted by a `forward.out` listener of this client.
  const forwardListeners = new Map<number, (channel: Channel, request: ControlMessage) => void>();
  const onAgentOpen = (channel: Channel, request: ControlMessage): void => {
    const listener = request.type === "forward.accepted" ? acceptedListener(request) : undefined;
    const deliver = listener === undefined ? undefined : forwardListeners.get(listener);
    if (deliver === undefined) channel.close();
    else deliver(channel, request);
  };

  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      return true;
    };
    const fail = (error: PolydevError): void => {
      closeReason ??= error;
      if (!settle()) return;
      mux.close();
      reject(error);
    };
    const onAbort = (): void => fail(signal ? aborted(signal) : connectionClosed());
    const timer = setTimeout(
      () =>
        fail(
          new PolydevError("timeout", `the sandbox's agent did not say hello within ${helloTimeoutMs} ms`),
        ),
      helloTimeoutMs,
    );
    const mux: Mux = new Mux(
      stream,
      {
        onHello: (message) => {
          if (settled) return;
          try {
            const hello = parseServerHello(message);
            mux.hello(clientHello());
            if (settle()) resolve(new AgentClient(mux, hello, closedError, forwardListeners, closed));
          } catch (error) {
            fail(error instanceof PolydevError ? error : new PolydevError("internal", String(error)));
          }
        },
        onOpen: onAgentOpen,
        onConnectionControl: (message) => {
          if (message.type !== "error") return;
          closeReason ??= fromWireError(message);
          fail(closeReason);
        },
        onClose: (error) => {
          markClosed();
          closeReason ??=
            error === undefined
              ? connectionClosed()
              : new PolydevError(
                  "sandbox_not_running",
                  `the connection to the sandbox's agent failed: ${error.message}`,
                  {
                    cause: error,
                  },
                );
          fail(closeReason);
        },
      },
      "client",
    );
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
}
