/** Launches a file script inside the sandbox and collects what it says. */
import type { ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import type { SandboxLauncher } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Channel } from "./channel.js";
import type { FileScript } from "./file-scripts.js";
import { fileScriptError, fileScripts } from "./file-scripts.js";
import { launchCommand, spawnDetached } from "./launch.js";
import { signalGroup } from "./process-tree.js";

/** Listings and stat answers are read whole; past this a directory is refused, not buffered. */
export const MAX_LISTING_BYTES = 16 * 1024 * 1024;
const MAX_STDERR_BYTES = 4096;

export function launchScript(
  launcher: SandboxLauncher,
  script: FileScript,
  path: string,
  args: string[],
  stdin: "pipe" | "ignore",
): ChildProcess {
  const argv = ["/bin/sh", "-c", fileScripts[script], "sh", launcher.home, path, ...args];
  return spawnDetached(launchCommand(launcher, { argv }), [stdin, "pipe", "pipe"]);
}

/** Resolves with the exit code once the script has exited and its output is read; -1 if it never ran. */
export function scriptExit(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once("error", () => undefined);
    child.once("close", (code) => resolve(code ?? -1));
  });
}

/** The first few KiB of stderr, for error messages. */
export function collectStderr(child: ChildProcess): () => string {
  let text = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (text.length < MAX_STDERR_BYTES) text += chunk.toString("utf8");
  });
  return () => text;
}

/** Kills the script's process group if the channel closes first (the caller gave up). */
export function killWithChannel(channel: Channel, child: ChildProcess, signal: NodeJS.Signals): () => void {
  let done = false;
  const kill = (): void => {
    if (!done && child.pid !== undefined) signalGroup(child.pid, signal);
  };
  channel.once("close", kill);
  return () => {
    done = true;
    channel.off("close", kill);
  };
}

async function collect(stream: Readable | null, child: ChildProcess): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream ?? []) {
    if (!Buffer.isBuffer(chunk)) continue;
    size += chunk.length;
    if (size > MAX_LISTING_BYTES) {
      if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
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
  const child = launchScript(launcher, script, path, args, "ignore");
  const release = killWithChannel(channel, child, "SIGKILL");
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
