/**
 * exec: one launched process per channel, its stdio mapped to the channel's streams. The
 * launcher starts it inside the sandbox (the namespace driver's exec server): nothing is spawned
 * on the host, and argv runs exactly as given (no shell in between).
 */
import type { Readable, Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type { ControlMessage } from "./channel.js";
import { StreamId } from "./channel.js";
import { launchRequest } from "./launch.js";
import type { Operation } from "./operation.js";
import { flushed } from "./operation.js";
import { argvField, envField, optionalNumber, optionalString, signalField } from "./request-fields.js";

export const execOperation: Operation = ({ launcher }, channel, request) => {
  const argv = argvField(request);
  const timeoutMs = optionalNumber(request, "timeoutMs");
  const startedAt = performance.now();
  const child = launcher.start(
    launchRequest(launcher, {
      argv,
      cwd: optionalString(request, "cwd"),
      env: envField(request),
      user: optionalString(request, "user"),
    }),
  );
  const stdout = channel.writable(StreamId.stdout);
  const stderr = channel.writable(StreamId.stderr);
  let exited = false;
  let timedOut = false;

  // The timeout, SIGKILL and an abandoned channel stop the command and everything it started.
  const killAll = (): void => {
    if (!exited) child.kill();
  };
  const timer =
    timeoutMs !== undefined && timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          killAll();
        }, timeoutMs)
      : undefined;

  feedStdin(channel.readable(StreamId.stdin), child.stdin);
  child.stdout.pipe(stdout, { end: false });
  child.stderr.pipe(stderr, { end: false });

  channel.on("control", (message: ControlMessage) => {
    if (message.type !== "signal" || exited) return;
    let signal: NodeJS.Signals;
    try {
      signal = signalField(message);
    } catch {
      return; // the client checks names before sending; a bad one has nobody to answer
    }
    child.signal(signal);
  });
  // The caller went away: nothing will read the output, so the command goes too.
  channel.once("close", () => {
    if (!exited) child.abandon();
  });

  void child.exited
    .then(async (exit) => {
      exited = true;
      if (timer !== undefined) clearTimeout(timer);
      child.stdin.destroy();
      // Everything the process wrote reaches the channel before its streams end.
      await Promise.all([ended(child.stdout), ended(child.stderr)]);
      if (exit.failure !== undefined) stderr.write(`polydev: ${exit.failure}\n`);
      stdout.end();
      stderr.end();
      await Promise.all([flushed(stdout), flushed(stderr)]);
      channel.control({
        type: "exit",
        exitCode: exit.exitCode,
        signal: timedOut ? "SIGKILL" : exit.signal,
        timedOut,
        durationMs: Math.round(performance.now() - startedAt),
      });
      channel.close();
    })
    .catch(() => channel.close());
  channel.control({ type: "started" });
};

async function ended(stream: Readable): Promise<void> {
  await finished(stream).catch(() => undefined);
}

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
