/**
 * exec: one launched process per channel, its stdio mapped to the channel's streams. Exactly the
 * launcher's command is spawned (no shell in between), so an exec costs one spawn.
 */
import { existsSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import type { ControlMessage } from "./channel.js";
import { StreamId } from "./channel.js";
import { launchCommand, spawnDetached } from "./launch.js";
import type { Operation } from "./operation.js";
import { flushed } from "./operation.js";
import { descendant, killTree, signalPid } from "./process-tree.js";
import { argvField, envField, optionalNumber, optionalString, signalField } from "./request-fields.js";

export const execOperation: Operation = ({ launcher }, channel, request) => {
  const argv = argvField(request);
  const timeoutMs = optionalNumber(request, "timeoutMs");
  const command = launchCommand(launcher, {
    argv,
    cwd: optionalString(request, "cwd"),
    env: envField(request),
  });
  const startedAt = performance.now();
  const child = spawnDetached(command, ["pipe", "pipe", "pipe"]);
  const stdout = channel.writable(StreamId.stdout);
  const stderr = channel.writable(StreamId.stderr);
  let exited = false;
  let timedOut = false;
  let spawnError: NodeJS.ErrnoException | undefined;

  // The timeout, SIGKILL and an abandoned channel stop the command and everything it started.
  const killAll = (): void => {
    if (!exited && child.pid !== undefined) void killTree(child.pid);
  };
  const timer =
    timeoutMs !== undefined && timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          killAll();
        }, timeoutMs)
      : undefined;

  if (child.stdin) feedStdin(channel.readable(StreamId.stdin), child.stdin);
  child.stdout?.pipe(stdout, { end: false });
  child.stderr?.pipe(stderr, { end: false });

  channel.on("control", (message: ControlMessage) => {
    if (message.type !== "signal" || exited || child.pid === undefined) return;
    const pid = child.pid;
    let signal: NodeJS.Signals;
    try {
      signal = signalField(message);
    } catch {
      return; // the client checks names before sending; a bad one has nobody to answer
    }
    if (signal === "SIGKILL") {
      killAll();
      return;
    }
    // Other signals go to the command, not to the launcher's wrappers (nsenter dies on SIGTERM
    // instead of passing it on).
    if (command.wrapperDepth === 0) signalPid(pid, signal);
    else
      void descendant(pid, command.wrapperDepth).then((target) => {
        if (target !== undefined && !exited) signalPid(target, signal);
      });
  });
  // The caller went away: nothing will read the output, so the command goes too.
  channel.once("close", killAll);

  child.once("error", (error: NodeJS.ErrnoException) => {
    spawnError = error;
  });
  child.once("close", async (code, signal) => {
    exited = true;
    if (timer !== undefined) clearTimeout(timer);
    child.stdin?.destroy();
    if (spawnError !== undefined)
      stderr.write(`polydev: ${spawnFailure(argv[0], command.hostCwd, spawnError)}\n`);
    stdout.end();
    stderr.end();
    await Promise.all([flushed(stdout), flushed(stderr)]);
    channel.control({
      type: "exit",
      exitCode: spawnError === undefined ? code : spawnError.code === "EACCES" ? 126 : 127,
      signal: timedOut ? "SIGKILL" : signal,
      timedOut,
      durationMs: Math.round(performance.now() - startedAt),
    });
    channel.close();
  });
  channel.control({ type: "started" });
};

/**
 * Client bytes go to the process's stdin. Once the process has closed it (exited, or never reads
 * and closed it), the rest is read and dropped, so the client's writes finish instead of waiting
 * for credit forever, and the EPIPE is expected rather than an error.
 */
function feedStdin(input: Readable, stdin: Writable): void {
  stdin.on("error", () => undefined);
  input.pipe(stdin);
  stdin.once("close", () => {
    input.unpipe(stdin);
    input.resume();
  });
}

function spawnFailure(
  program: string | undefined,
  hostCwd: string | undefined,
  error: NodeJS.ErrnoException,
): string {
  if (error.code === "ENOENT" && hostCwd !== undefined && !existsSync(hostCwd)) {
    return `cannot run ${program}: the working directory ${hostCwd} does not exist`;
  }
  if (error.code === "ENOENT") return `${program}: command not found`;
  if (error.code === "EACCES") return `${program}: permission denied`;
  return `cannot run ${program}: ${error.message}`;
}
