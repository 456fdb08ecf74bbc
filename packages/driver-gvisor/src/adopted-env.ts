/**
 * A warm pool's spare was started with an empty environment; `adopt` gives it a create's. The
 * agent's base environment is fixed when its process starts, so the adopted variables travel
 * with each request instead: every process started through a connection gets them under the
 * request's own. They are kept in the sandbox's host-side directory (root-only, never the
 * sandbox's disk), so a restarted server's connections apply them too.
 */
import type { AgentConnection, BackgroundRequest, ExecRequest, PtyRequest } from "@polydev/core";

/**
 * HOME stays the image user's, as on create (where HOME is set after the sandbox's env); an
 * empty result means nothing to add.
 */
export function adoptedEnv(env: Record<string, string>): Record<string, string> {
  const { HOME: _home, ...rest } = env;
  return rest;
}

function withEnv<T extends { env?: Record<string, string> }>(request: T, env: Record<string, string>): T {
  return { ...request, env: { ...env, ...request.env } };
}

/** `connection`, whose processes get `env` under each request's own variables. */
export function withAdoptedEnv(connection: AgentConnection, env: Record<string, string>): AgentConnection {
  if (Object.keys(env).length === 0) return connection;
  return {
    get hello() {
      return connection.hello;
    },
    get closed() {
      return connection.closed;
    },
    get files() {
      return connection.files;
    },
    ping: (signal) => connection.ping(signal),
    exec: (request: ExecRequest, signal) => connection.exec(withEnv(request, env), signal),
    openPty: (request: PtyRequest, signal) => connection.openPty(withEnv(request, env), signal),
    startBackground: (request: BackgroundRequest, signal) =>
      connection.startBackground(withEnv(request, env), signal),
    listBackground: (signal) => connection.listBackground(signal),
    getBackground: (id, signal) => connection.getBackground(id, signal),
    attachBackground: (id, options) => connection.attachBackground(id, options),
    signalBackground: (id, signal) => connection.signalBackground(id, signal),
    forwardIn: (port, signal) => connection.forwardIn(port, signal),
    forwardOut: (port, onConnection, signal) => connection.forwardOut(port, onConnection, signal),
    interceptEgress: (onConnection, signal) => connection.interceptEgress(onConnection, signal),
    close: () => connection.close(),
  };
}
