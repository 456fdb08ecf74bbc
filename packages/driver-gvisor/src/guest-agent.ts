/**
 * The in-guest agent of a gVisor sandbox, started by the sandbox's init (guest-init.c) and
 * bundled into one file run by the toolbox's node. It serves the agent protocol to every
 * connection on a unix socket that runsc (`--host-uds=create`) places in a host directory, so
 * the host reaches it again after its own restart.
 *
 *   node agent.mjs <socket path> <uid> <gid> <home>
 *
 * The agent runs as the Sentry's root; every command runs as the image's user (uid:gid, or the
 * request's `user`) through the init's `--as`, so a `kill -9 -1` of that user cannot end the
 * agent. Commands get the sandbox's environment (the image's env, the sandbox's env, HOME),
 * which reaches this process under a prefix so that none of it applies to the agent itself.
 */
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import type { Server, Socket } from "node:net";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { createAgentServer, identityLauncher } from "@polydev/agent";
import type { LaunchRequest, SandboxLauncher } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { QUIESCED_FILE } from "./agent-signals.js";

const GUEST_INIT = "/opt/polydev-gvisor/init";
const STATE_DIR = "/run/polydev-agent-state";

const [socketPath, uidText, gidText, home] = process.argv.slice(2);
if (socketPath === undefined || uidText === undefined || gidText === undefined || home === undefined) {
  process.stderr.write("polydev gvisor agent: usage: agent.mjs <socket path> <uid> <gid> <home>\n");
  process.exit(2);
}
const defaultUser = { uid: Number(uidText), gid: Number(gidText) };

/** The sandbox's own /etc/passwd (at most 64 KiB): a request's `user` by name or uid. */
function resolveUser(name: string): { uid: number; gid: number } {
  let text = "";
  try {
    const fd = openSync("/etc/passwd", "r");
    try {
      const buffer = Buffer.alloc(64 * 1024);
      text = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    // No passwd: only numeric users.
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length >= 4 && (fields[0] === name || fields[2] === name)) {
      return { uid: Number(fields[2]), gid: Number(fields[3]) };
    }
  }
  if (/^[0-9]+$/.test(name)) return { uid: Number(name), gid: Number(name) };
  throw new PolydevError("invalid_request", `the sandbox has no user ${name}`);
}

/** What runs as root before the init drops to the user (a background process's wrapper). */
const ROOT_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8",
});

/**
 * The request as the init's `--as`: the command's own environment travels as arguments and
 * becomes its environment only after the init has become the user, so nothing of it (an
 * LD_PRELOAD, a PATH) reaches a process that still runs as root.
 */
function asUser(request: LaunchRequest): LaunchRequest {
  const user = request.user === undefined ? defaultUser : resolveUser(request.user);
  const env = Object.entries(request.env).map(([key, value]) => `${key}=${value}`);
  return {
    ...request,
    env: { ...ROOT_ENV },
    argv: [
      GUEST_INIT,
      "--as",
      String(user.uid),
      String(user.gid),
      String(env.length),
      ...env,
      ...request.argv,
    ],
  };
}

/** The sandbox's environment, as the driver put it under its prefix (oci-spec.ts). */
const SANDBOX_ENV_PREFIX = "POLYDEV_SANDBOX_ENV_";
const baseEnv: Record<string, string> = {};
for (const [key, value] of Object.entries(process.env)) {
  if (value !== undefined && key.startsWith(SANDBOX_ENV_PREFIX)) {
    baseEnv[key.slice(SANDBOX_ENV_PREFIX.length)] = value;
    delete process.env[key];
  }
}
baseEnv.HOME = home;

// Readable: a command may look at what the agent holds open (its own processes' records).
mkdirSync(STATE_DIR, { recursive: true, mode: 0o755 });
const identity = identityLauncher({ home, stateDir: STATE_DIR, baseEnv });
const launcher: SandboxLauncher = {
  ...identity,
  start: (request) => identity.start(asUser(request)),
  background: {
    start: (request) => identity.background.start(asUser(request)),
    list: () => identity.background.list(),
    get: (id) => identity.background.get(id),
    attach: (id, options) => identity.background.attach(id, options),
    signal: (id, signal) => identity.background.signal(id, signal),
  },
};
const server = createAgentServer(launcher);

/** Narrowed once: closures below do not keep the check above. */
const agentSocketPath: string = socketPath;
const socketDir = dirname(agentSocketPath);
const readyPath = join(socketDir, "ready");
const quiescedPath = join(socketDir, QUIESCED_FILE);
const connections = new Set<Socket>();
let listener: Server | undefined;
/** While quiesced nothing else holds node's event loop open: this timer keeps the agent alive. */
let keepAlive: NodeJS.Timeout | undefined;

/** Listens on the socket; "ready" tells the host it accepts (the file exists from bind on). */
function listen(): void {
  clearInterval(keepAlive);
  keepAlive = undefined;
  rmSync(readyPath, { force: true });
  rmSync(quiescedPath, { force: true });
  // A stale socket file of an earlier agent would refuse the listen. After a restore the host
  // has removed it (the Sentry cannot lstat a host socket's file: EPERM), so a failure here is
  // that case, and the listen says whether it matters.
  try {
    rmSync(agentSocketPath, { force: true });
  } catch {
    // EPERM from the Sentry on a host socket's file: see above.
  }
  listener = createServer((socket) => {
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
    socket.on("error", () => undefined);
    server.serve(socket);
  })
    .on("error", (error) => {
      process.stderr.write(`polydev gvisor agent: ${error.message}\n`);
      process.exit(1);
    })
    .listen(agentSocketPath, () => writeFileSync(readyPath, ""));
}

/**
 * Before a checkpoint (SIGUSR1): runsc cannot save a bound host socket nor its connections, so
 * the agent lets go of all of them and says so with "quiesced"; its processes keep running.
 */
function quiesce(): void {
  const closing = listener;
  listener = undefined;
  keepAlive ??= setInterval(() => undefined, 2 ** 30);
  rmSync(readyPath, { force: true });
  if (closing === undefined) {
    writeFileSync(quiescedPath, "");
    return;
  }
  for (const socket of connections) socket.destroy();
  // The socket file stays: the Sentry cannot even lstat a host socket's file; the host removes it.
  closing.close(() => writeFileSync(quiescedPath, ""));
}

// SIGUSR1: let go of the host socket for a checkpoint; SIGUSR2: listen again (after a restore,
// or a checkpoint that failed). The host sends them through the init; the sandbox's own root
// can too, which only cuts the host off from this sandbox until its next hibernate and resume.
process.on("SIGUSR1", quiesce);
process.on("SIGUSR2", () => {
  if (listener === undefined) listen();
});
listen();
