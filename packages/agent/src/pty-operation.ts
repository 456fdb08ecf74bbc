/**
 * pty: a process on a terminal of its own inside the sandbox (the launcher allocates it there,
 * so no terminal descriptor is ever held on the host); output is flow-controlled like exec's.
 */
import { finished } from "node:stream/promises";
import type { ControlMessage } from "./channel.js";
import { StreamId } from "./channel.js";
import { launchRequest } from "./launch.js";
import type { Operation } from "./operation.js";
import { flushed } from "./operation.js";
import { argvField, envField, optionalNumber, optionalString, signalField } from "./request-fields.js";

// Decided inside the sandbox, whose filesystem may differ from the host's; `exec` replaces the
// probing shell, so no extra process stays around.
const LOGIN_SHELL = ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l"];

const dimension = (request: ControlMessage, name: string, fallback: number): number =>
  Math.min(1000, Math.max(1, Math.floor(optionalNumber(request, name) ?? fallback)));

export const ptyOperation: Operation = ({ launcher }, channel, request) => {
  const argv = request.argv === undefined || request.argv === null ? LOGIN_SHELL : argvField(request);
  const startedAt = performance.now();
  const term = launcher.start(
    launchRequest(launcher, {
      argv,
      cwd: optionalString(request, "cwd"),
      user: optionalString(request, "user"),
      env: { TERM: "xterm-256color", ...envField(request) },
      tty: { cols: dimension(request, "cols", 80), rows: dimension(request, "rows", 24) },
    }),
  );
  let exited = false;
  let cols = dimension(request, "cols", 80);
  let rows = dimension(request, "rows", 24);

  const output = channel.writable(StreamId.stdout);
  term.stdout.pipe(output, { end: false });
  term.stderr.resume();
  const input = channel.readable(StreamId.stdin);
  term.stdin.on("error", () => undefined);
  input.pipe(term.stdin, { end: false });

  channel.on("control", (message: ControlMessage) => {
    if (exited) return;
    try {
      if (message.type === "resize") {
        cols = dimension(message, "cols", cols);
        rows = dimension(message, "rows", rows);
        term.resize(cols, rows);
      } else if (message.type === "signal") term.signal(signalField(message));
    } catch {
      // A malformed resize or signal mid-session has nobody to answer; the terminal goes on.
    }
  });
  // Closing a terminal hangs up its session, as a terminal emulator does; whatever ignores
  // the hangup is killed shortly after (the launcher does both).
  channel.once("close", () => {
    if (!exited) term.abandon();
  });

  void term.exited
    .then(async (exit) => {
      exited = true;
      input.unpipe(term.stdin);
      input.resume();
      await finished(term.stdout).catch(() => undefined);
      output.end();
      await flushed(output);
      channel.control({
        type: "exit",
        exitCode: exit.exitCode,
        signal: exit.signal,
        timedOut: false,
        durationMs: Math.round(performance.now() - startedAt),
      });
      channel.close();
    })
    .catch(() => channel.close());
  channel.control({ type: "started" });
};
