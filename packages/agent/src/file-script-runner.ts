/**
 * Launches a file operation inside the sandbox and collects what it says: the launcher's own file
 * helper where it has one (nothing needed from the image), else the POSIX sh script of the same
 * name, with the same arguments, exit codes and output.
 */
import type { Readable } from "node:stream";
import type { LaunchedProcess, SandboxLauncher } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Channel } from "./channel.js";
import type { FileScript } from "./file-scripts.js";
import { fileScriptError, fileScripts } from "./file-scripts.js";
import { launchRequest } from "./launch.js";

/** Listings and stat answers are read whole; past this a directory is refused, not buffered. */
export const MAX_LISTING_BYTES = 16 * 1024 * 1024;
const MAX_STDERR_BYTES = 4096;

export function launchScript(
  launcher: SandboxLauncher,
  script: FileScript,
  path: string,
  args: string[],
): LaunchedProcess {
  if (launcher.fileHelper === undefined) {
    const argv = ["/bin/sh", "-c", fileScripts[script], "sh", launcher.home, path, ...args];
    return launcher.start(launchRequest(launcher, { argv }));
  }
  // From "/": the helper needs no working directory, and a missing home is then its answer
  // (with the reason), not a process that could not start.
  const argv = [...launcher.fileHelper, script, launcher.home, path, ...args];
  return launcher.start(launchRequest(launcher, { argv, cwd: "/" }));
}

/** Resolves with the exit code once the script has exited and its output is read; -1 if it never ran. */
export async function scriptExit(child: LaunchedProcess): Promise<number> {
  const exit = await child.exited;
  return exit.exitCode ?? -1;
}

/** The first few KiB of stderr, for error messages. */
export function collectStderr(child: LaunchedProcess): () => string {
  let text = "";
  child.stderr.on("data", (chunk: Buffer) => {
    if (text.length < MAX_STDERR_BYTES) text += chunk.toString("utf8");
  });
  return () => text;
}

/**
 * If the channel closes first (the caller gave up), the script is stopped: killed, or sent
 * `signal` (an upload's script traps TERM to delete its temporary file).
 */
export function stopWithChannel(
  channel: Channel,
  child: LaunchedProcess,
  signal: "SIGKILL" | "SIGTERM",
): () => void {
  let done = false;
  const stop = (): void => {
    if (done) return;
    if (signal === "SIGKILL") child.kill();
    else child.signal(signal);
  };
  channel.once("close", stop);
  return () => {
    done = true;
    channel.off("close", stop);
  };
}

async function collect(stream: Readable, child: LaunchedProcess): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    if (!Buffer.isBuffer(chunk)) continue;
    size += chunk.length;
    if (size > MAX_LISTING_BYTES) {
      child.kill();
      throw new PolydevError("payload_too_large", `the answer is larger than ${MAX_LISTING_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Runs a script to completion and returns its stdout, or throws the error its exit code names. */
export async function runScript(
  launcher: SandboxLauncher,
  channel: Channel,
  script: FileScript,
  path: string,
  args: string[] = [],
): Promise<Buffer> {
  const child = launchScript(launcher, script, path, args);
  child.stdin.on("error", () => undefined);
  child.stdin.end();
  const release = stopWithChannel(channel, child, "SIGKILL");
  const stderr = collectStderr(child);
  const exited = scriptExit(child);
  try {
    const [output, code] = await Promise.all([collect(child.stdout, child), exited]);
    if (code !== 0) throw fileScriptError(code, path, stderr());
    return output;
  } finally {
    release();
  }
}
