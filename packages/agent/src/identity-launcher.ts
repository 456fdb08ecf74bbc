import type { Server, Socket } from "node:net";
import { connect, createServer } from "node:net";
import type { Duplex } from "node:stream";
import type { LaunchRequest, PortListener, SandboxLauncher } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { LocalBackgroundProcesses } from "./background-processes.js";
import { startLocalProcess } from "./local-process.js";

export interface IdentityLauncherOptions {
  /** The home that relative paths and the default working directory resolve against. */
  home: string;
  /** Where background processes keep their output and exit files. */
  stateDir: string;
  /** Every process's environment; default: PATH=/usr/local/bin:/usr/bin:/bin, HOME, LANG=C.UTF-8. */
  baseEnv?: Record<string, string>;
  /** See `SandboxLauncher.fileHelper`; default none: file operations run the sh scripts. */
  fileHelper?: readonly string[];
}

/**
 * Runs commands directly on this machine, argv as given: for an agent that already lives inside
 * its sandbox (a VM guest, a pod), and for the agent's own tests. Never used at a host edge,
 * where a request's argv and environment would reach a host process.
 */
export function identityLauncher(options: IdentityLauncherOptions): SandboxLauncher {
  const baseEnv = Object.freeze({
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: options.home,
    LANG: "C.UTF-8",
    ...options.baseEnv,
  });
  return Object.freeze({
    home: options.home,
    baseEnv,
    ...(options.fileHelper === undefined ? {} : { fileHelper: Object.freeze([...options.fileHelper]) }),
    start: (request: LaunchRequest) => startLocalProcess(request),
    background: new LocalBackgroundProcesses(options.stateDir),
    connect: connectLoopback,
    listen: listenLoopback,
  });
}

function connectLoopback(port: number, signal?: AbortSignal): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: "127.0.0.1", port, ...(signal ? { signal } : {}) });
    socket.once("connect", () => {
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      reject(
        new PolydevError("port_unreachable", `nothing accepts connections on port ${port} (${error.code})`, {
          details: { port },
        }),
      );
    });
  });
}

function listenLoopback(
  port: number,
  onConnection: (socket: Duplex) => void,
  signal?: AbortSignal,
): Promise<PortListener> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer((socket) => {
      socket.on("error", () => undefined);
      onConnection(socket);
    });
    const closed = new Promise<void>((resolveClosed) => server.once("close", () => resolveClosed()));
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new PolydevError("conflict", `cannot listen on port ${port}: ${error.code}`, { details: { port } }),
      ),
    );
    server.listen({ host: "127.0.0.1", port, ...(signal ? { signal } : {}) }, () => {
      server.removeAllListeners("error");
      server.on("error", () => undefined);
      resolve({ close: () => server.close(), closed });
    });
  });
}
