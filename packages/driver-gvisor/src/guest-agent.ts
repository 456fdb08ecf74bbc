/**
 * The in-guest agent of a gVisor sandbox: the container's own process (bundled into one file
 * and run by the toolbox's node). It serves the agent protocol to every connection on a unix
 * socket that runsc (`--host-uds=create`) places in a host directory, so the host reaches it
 * again after its own restart, and commands are children of the container's process, which is
 * what carries the sandbox's seccomp and rlimits.
 *
 *   node agent.mjs <socket path> <home>
 *
 * Every command gets this process's environment (the OCI spec's: the image's env, the
 * sandbox's env, HOME), which only the driver chose; the agent's own variables are dropped.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { createAgentServer, identityLauncher } from "@polydev/agent";

const [socketPath, home] = process.argv.slice(2);
if (socketPath === undefined || home === undefined) {
  process.stderr.write("polydev gvisor agent: usage: agent.mjs <socket path> <home>\n");
  process.exit(2);
}

const baseEnv: Record<string, string> = {};
for (const [key, value] of Object.entries(process.env)) {
  if (value !== undefined && !key.startsWith("POLYDEV_AGENT_")) baseEnv[key] = value;
}
baseEnv.HOME = home;

const stateDir = join(home, ".polydev-agent");
mkdirSync(stateDir, { recursive: true, mode: 0o700 });
const server = createAgentServer(identityLauncher({ home, stateDir, baseEnv }));

// Left by an earlier agent of this sandbox (a restore): a stale socket would refuse the listen.
const readyPath = join(dirname(socketPath), "ready");
rmSync(readyPath, { force: true });
rmSync(socketPath, { force: true });
createServer((socket) => {
  socket.on("error", () => undefined);
  server.serve(socket);
})
  .on("error", (error) => {
    process.stderr.write(`polydev gvisor agent: ${error.message}\n`);
    process.exit(1);
  })
  // The socket file exists from bind on, before it accepts: "ready" tells the host it does.
  .listen(socketPath, () => writeFileSync(readyPath, ""));
