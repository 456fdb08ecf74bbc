/**
 * One command in a sandbox, its output read with a bound: what a sandbox prints is its own to
 * choose, what the server keeps of it is not. Past the bound the rest is read and dropped (so the
 * process is never stalled by back-pressure) and `truncated` says so.
 */
import type { Readable } from "node:stream";
import type { AgentConnection, ExitInfo } from "@polydev/core";

export interface BoundedOutput {
  text: string;
  truncated: boolean;
}

export interface SandboxCommandResult {
  exit: ExitInfo;
  stdout: BoundedOutput;
  stderr: BoundedOutput;
}

export interface SandboxCommand {
  argv: string[];
  cwd?: string | undefined;
  env?: Record<string, string> | undefined;
  timeoutMs: number;
  maxStdoutBytes: number;
  maxStderrBytes?: number | undefined;
  /** Keep the end of stdout instead of its start (a check's verdict is at its end). */
  keepStdoutTail?: boolean | undefined;
}

export async function runInSandbox(
  connection: AgentConnection,
  command: SandboxCommand,
): Promise<SandboxCommandResult> {
  const process = await connection.exec({
    argv: command.argv,
    ...(command.cwd === undefined ? {} : { cwd: command.cwd }),
    env: command.env ?? {},
    timeoutMs: command.timeoutMs,
  });
  process.stdin.end();
  process.stdout.on("error", () => undefined);
  process.stderr.on("error", () => undefined);
  const [stdout, stderr] = await Promise.all([
    readBounded(process.stdout, command.maxStdoutBytes, command.keepStdoutTail === true),
    readBounded(process.stderr, command.maxStderrBytes ?? 4096, true),
  ]);
  return { exit: await process.exited, stdout, stderr };
}

async function readBounded(stream: Readable, maxBytes: number, keepTail: boolean): Promise<BoundedOutput> {
  let chunks: Buffer[] = [];
  let held = 0;
  let truncated = false;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (!keepTail) {
        if (held >= maxBytes) {
          truncated = true;
          continue;
        }
        const room = maxBytes - held;
        if (chunk.length > room) truncated = true;
        const kept = chunk.subarray(0, room);
        chunks.push(kept);
        held += kept.length;
        continue;
      }
      chunks.push(chunk);
      held += chunk.length;
      if (held > maxBytes) {
        truncated = true;
        const joined = Buffer.concat(chunks);
        const tail = joined.subarray(joined.length - maxBytes);
        chunks = [tail];
        held = tail.length;
      }
    }
  } catch {
    // A stream cut short (the sandbox went away) shows in the exit instead.
  }
  // A cut may split a UTF-8 sequence: toString replaces the broken end with U+FFFD.
  return { text: Buffer.concat(chunks).toString("utf8"), truncated };
}
