/** pty: a launched process on a pseudo-terminal; output is flow-controlled like exec's stdout. */
import type { IPty } from "node-pty";
import { spawn } from "node-pty";
import type { ControlMessage } from "./channel.js";
import { StreamId } from "./channel.js";
import { launchCommand } from "./launch.js";
import type { Operation } from "./operation.js";
import { flushed } from "./operation.js";
import { descendant, signalGroup, signalName, signalPid } from "./process-tree.js";
import { argvField, envField, optionalNumber, optionalString, signalField } from "./request-fields.js";

// Decided inside the sandbox, whose filesystem may differ from the host's; `exec` replaces the
// probing shell, so no extra process stays around.
const LOGIN_SHELL = ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l"];
/** After SIGHUP, a terminal's processes get this long before SIGKILL. */
const HANGUP_GRACE_MS = 2000;

const dimension = (request: ControlMessage, name: string, fallback: number): number =>
  Math.min(1000, Math.max(1, Math.floor(optionalNumber(request, name) ?? fallback)));

export const ptyOperation: Operation = ({ launcher }, channel, request) => {
  const argv = request.argv === undefined || request.argv === null ? LOGIN_SHELL : argvField(request);
  const command = launchCommand(launcher, {
    argv,
    cwd: optionalString(request, "cwd"),
    env: { TERM: "xterm-256color", ...envField(request) },
  });
  const startedAt = performance.now();
  const term: IPty = spawn(command.file, command.args, {
    name: command.env.TERM ?? "xterm-256color",
    cols: dimension(request, "cols", 80),
    rows: dimension(request, "rows", 24),
    cwd: command.hostCwd ?? "/",
    env: command.env,
    // Bytes, not strings: a UTF-8 character split across reads must not be mangled.
    encoding: null,
  });
  let exited = false;

  const output = channel.writable(StreamId.stdout);
  let paused = false;
  term.onData((data: string | Buffer) => {
    // Nothing may be written once the exit has ended the stream (it would be an error event).
    if (exited || output.write(data) || paused) return;
    paused = true;
    term.pause();
    output.once("drain", () => {
      paused = false;
      term.resume();
    });
  });
  channel.readable(StreamId.stdin).on("data", (chunk: Buffer) => {
    if (!exited) term.write(chunk);
  });

  channel.on("control", (message: ControlMessage) => {
    if (exited) return;
    try {
      if (message.type === "resize")
        term.resize(dimension(message, "cols", term.cols), dimension(message, "rows", term.rows));
      else if (message.type === "signal") {
        const signal = signalField(message);
        void descendant(term.pid, command.wrapperDepth).then((target) => {
          if (target !== undefined && !exited) signalPid(target, signal);
        });
      }
    } catch {
      // A malformed resize or signal mid-session has nobody to answer; the terminal goes on.
    }
  });
  // Closing a terminal hangs up its session, as a terminal emulator does; whatever ignores
  // the hangup is killed shortly after.
  channel.once("close", () => {
    if (exited) return;
    signalGroup(term.pid, "SIGHUP");
    setTimeout(() => {
      if (!exited) signalGroup(term.pid, "SIGKILL");
    }, HANGUP_GRACE_MS).unref();
  });

  term.onExit(async ({ exitCode, signal }) => {
    exited = true;
    output.end();
    await flushed(output);
    const signalled = signalName(signal);
    channel.control({
      type: "exit",
      exitCode: signalled === null ? exitCode : null,
      signal: signalled,
      timedOut: false,
      durationMs: Math.round(performance.now() - startedAt),
    });
    channel.close();
  });
  channel.control({ type: "started" });
};
