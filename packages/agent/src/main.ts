#!/usr/bin/env node
/**
 * polydev-agent: serves the agent protocol to one caller on stdin/stdout, running commands
 * directly on this machine; for an agent that lives inside its sandbox (a VM guest, a pod).
 *
 *   --home <dir>       default $POLYDEV_AGENT_HOME, else $HOME
 *   --state-dir <dir>  default $POLYDEV_AGENT_STATE_DIR, else <home>/.polydev-agent
 *   --file-helper <path>  default $POLYDEV_AGENT_FILE_HELPER, else none: Polydev's init binary
 *                      (driver-namespace's polydev-exec-server) in this machine, whose `--file`
 *                      mode then does the file operations; without it they run sh scripts,
 *                      which need sh and GNU coreutils/findutils here
 *
 * Commands get PATH (this process's, else a default), HOME and LANG=C.UTF-8, and nothing else of
 * this process's environment. stdout carries the protocol only; diagnostics go to stderr. Exits
 * when the caller closes the stream; background processes keep running.
 */
import { mkdirSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { Duplex } from "node:stream";
import { parseArgs } from "node:util";
import { identityLauncher } from "./identity-launcher.js";
import { createAgentServer } from "./server.js";

const { values } = parseArgs({
  options: { home: { type: "string" }, "state-dir": { type: "string" }, "file-helper": { type: "string" } },
  strict: true,
});
const home = values.home ?? process.env.POLYDEV_AGENT_HOME ?? process.env.HOME;
if (home === undefined || !isAbsolute(home)) {
  process.stderr.write("polydev-agent: give the home as an absolute path (--home or POLYDEV_AGENT_HOME)\n");
  process.exit(2);
}
const stateDir = values["state-dir"] ?? process.env.POLYDEV_AGENT_STATE_DIR ?? join(home, ".polydev-agent");
mkdirSync(stateDir, { recursive: true, mode: 0o700 });
const fileHelper = values["file-helper"] ?? process.env.POLYDEV_AGENT_FILE_HELPER;
if (fileHelper !== undefined && !isAbsolute(fileHelper)) {
  process.stderr.write("polydev-agent: give the file helper as an absolute path (--file-helper)\n");
  process.exit(2);
}

const launcher = identityLauncher({
  home,
  stateDir,
  baseEnv: { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: home, LANG: "C.UTF-8" },
  ...(fileHelper === undefined ? {} : { fileHelper: [fileHelper, "--file"] }),
});
createAgentServer(launcher).serve(Duplex.from({ readable: process.stdin, writable: process.stdout }));
