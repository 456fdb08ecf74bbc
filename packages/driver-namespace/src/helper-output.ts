/** Reading what the init's helper subcommands print: bounded, and treated as untrusted input. */
import type { Readable } from "node:stream";
import type { LaunchedProcess } from "@polydev/core";
import { PolydevError } from "@polydev/core";

/** Far above any listing a sandbox's pids limit allows; past it the answer is refused. */
const MAX_HELPER_OUTPUT_BYTES = 8 * 1024 * 1024;
const MAX_STDERR_BYTES = 4096;

export interface HelperResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

async function collect(stream: Readable, limit: number, onOverflow: () => void): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  for await (const chunk of stream) {
    const buffer = chunk as Buffer;
    if (over) continue;
    size += buffer.length;
    if (size > limit) {
      over = true;
      onOverflow();
      continue;
    }
    chunks.push(buffer);
  }
  if (over) throw new PolydevError("payload_too_large", `the sandbox's answer is larger than ${limit} bytes`);
  return Buffer.concat(chunks).toString("utf8");
}

/** Runs a helper to its end and collects its output. */
export async function runHelper(process: LaunchedProcess): Promise<HelperResult> {
  process.stdin.on("error", () => undefined);
  process.stdin.end();
  let stderr = "";
  process.stderr.on("data", (chunk: Buffer) => {
    if (stderr.length < MAX_STDERR_BYTES) stderr += chunk.toString("utf8");
  });
  const [stdout, exit] = await Promise.all([
    collect(process.stdout, MAX_HELPER_OUTPUT_BYTES, () => process.kill()),
    process.exited,
  ]);
  if (exit.failure !== undefined) {
    throw new PolydevError("command_failed", `the sandbox could not run the request: ${exit.failure}`);
  }
  return { exitCode: exit.exitCode, stdout, stderr: stderr.trim().slice(0, MAX_STDERR_BYTES) };
}
