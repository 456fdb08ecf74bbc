/**
 * Ports on a namespace sandbox's loopback, reached from the host without a route into its
 * network namespace (so the same works for `network: "none"`):
 * - connect: the init's `--connect <port>` helper (native/forward.c) connects inside the sandbox
 *   and its stdin/stdout become the connection; it says "+" first, once connected.
 * - listen: the host serves a unix socket in the sandbox's root-owned exec directory, owned by
 *   the sandbox's uid and mode 600 (no other sandbox sees the directory, no other host user may
 *   connect), and the init's `--listen <port> <socket>` helper carries every connection made to
 *   the port inside the sandbox to it. Closing the listener ends the helper's stdin: it stops
 *   listening and leaves the connections it carries to finish.
 * The host keeps no buffer of its own beyond the sockets' and caps concurrent connections.
 */
import { chmodSync, chownSync, rmSync } from "node:fs";
import type { Server, Socket } from "node:net";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { LaunchedProcess, PortListener } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { EXEC_DIR_IN_SANDBOX } from "./bwrap-args.js";
import { processSocket } from "./process-socket.js";

/** Connections one listener carries at once; more wait in the sandbox's accept queue. */
const MAX_LISTENER_CONNECTIONS = 64;

export class SandboxPorts {
  constructor(
    private readonly helper: (args: string[]) => LaunchedProcess,
    private readonly execDir: string,
    private readonly hostUid: number,
  ) {}

  async connect(port: number, signal?: AbortSignal): Promise<Duplex> {
    assertPort(port);
    const process = this.helper(["--connect", String(port)]);
    const stop = (): void => process.kill();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      await connected(process, port);
    } finally {
      signal?.removeEventListener("abort", stop);
    }
    return processSocket(process);
  }

  async listen(
    port: number,
    onConnection: (socket: Duplex) => void,
    signal?: AbortSignal,
  ): Promise<PortListener> {
    assertPort(port);
    return listenThroughHelper({
      helper: this.helper,
      execDir: this.execDir,
      hostUid: this.hostUid,
      name: `fwd-${port}.sock`,
      args: (path) => ["--listen", String(port), path],
      onConnection,
      notReady: () =>
        new PolydevError("conflict", `cannot listen on port ${port} in the sandbox (is it in use?)`, {
          details: { port },
        }),
      signal,
    });
  }
}

/**
 * Serves the unix socket `name` in the sandbox's exec directory (the sandbox uid's alone, mode
 * 600) and starts the init's helper `args(its path inside the sandbox)`, which carries
 * connections made inside the sandbox to it and says "ready" once listening. Closing ends the
 * helper's stdin: it stops listening and leaves the connections it carries to finish.
 */
export async function listenThroughHelper(options: {
  helper: (args: string[]) => LaunchedProcess;
  execDir: string;
  hostUid: number;
  name: string;
  args: (pathInSandbox: string) => string[];
  onConnection: (socket: Socket) => void;
  /** The error when the helper does not say "ready". */
  notReady: () => PolydevError;
  signal?: AbortSignal | undefined;
}): Promise<PortListener> {
  const { name, signal } = options;
  const hostPath = join(options.execDir, name);
  rmSync(hostPath, { force: true });
  const server: Server = createServer((socket: Socket) => {
    socket.on("error", () => undefined);
    options.onConnection(socket);
  });
  server.maxConnections = MAX_LISTENER_CONNECTIONS;
  server.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(hostPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chownSync(hostPath, options.hostUid, options.hostUid);
  chmodSync(hostPath, 0o600);
  const forwarder = options.helper(options.args(`${EXEC_DIR_IN_SANDBOX}/${name}`));
  forwarder.stdin.on("error", () => undefined);
  // Stops listening; the connections already carried end on their own (the helper stops at
  // the end of its stdin, and the host's server keeps the sockets it has).
  const close = (): void => {
    forwarder.stdin.end();
    server.close();
    try {
      rmSync(hostPath, { force: true });
    } catch {
      // The sandbox's exec directory went with it (destroyed): nothing is left to remove.
    }
  };
  const abort = (): void => {
    forwarder.kill();
    close();
  };
  signal?.addEventListener("abort", abort, { once: true });
  const closed = Promise.race([
    forwarder.exited.then(() => undefined),
    new Promise<void>((resolve) => server.once("close", () => resolve())),
  ]);
  closed.then(close).catch(() => undefined);
  try {
    if ((await firstBytes(forwarder, 6)) !== "ready\n") throw options.notReady();
  } catch (error) {
    abort();
    throw error;
  } finally {
    signal?.removeEventListener("abort", abort);
  }
  return { close, closed };
}

function assertPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PolydevError("invalid_request", "port must be a TCP port number (1-65535)");
  }
}

/** Resolves once the connect helper says "+"; rejects with why it could not connect. */
async function connected(process: LaunchedProcess, port: number): Promise<void> {
  if ((await firstBytes(process, 1)) === "+") return;
  throw new PolydevError("port_unreachable", `nothing accepts connections on port ${port} in the sandbox`, {
    details: { port },
  });
}

/**
 * The first `length` bytes of a helper's stdout, taken off the stream (what follows belongs to
 * the forwarded connection), or less if it ended first.
 */
function firstBytes(process: LaunchedProcess, length: number): Promise<string> {
  const { stdout } = process;
  return new Promise((resolve) => {
    let done = false;
    const finish = (text: string): void => {
      if (done) return;
      done = true;
      stdout.off("readable", onReadable);
      resolve(text);
    };
    const onReadable = (): void => {
      const chunk: Buffer | null = stdout.read(length);
      if (chunk !== null) finish(chunk.toString("latin1"));
    };
    stdout.on("readable", onReadable);
    stdout.once("end", () => finish(""));
    stdout.once("error", () => finish(""));
  });
}
