/** Small helpers the driver contract uses to talk to a sandbox through its agent. */
import { Readable } from "node:stream";
import type { AgentConnection, ExecRequest } from "../agent.js";

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
}

async function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString("utf8");
}

/** Runs a shell line (or an argv) to completion and returns everything it printed. */
export async function runCommand(
  connection: AgentConnection,
  command: string | string[],
  options: Omit<ExecRequest, "argv"> = {},
): Promise<CommandResult> {
  const argv = typeof command === "string" ? ["/bin/sh", "-c", command] : command;
  const process = await connection.exec({ argv, ...options });
  process.stdin.end();
  const [stdout, stderr, exit] = await Promise.all([
    collect(process.stdout),
    collect(process.stderr),
    process.exited,
  ]);
  return { stdout, stderr, exitCode: exit.exitCode, signal: exit.signal, timedOut: exit.timedOut };
}

export async function writeText(connection: AgentConnection, path: string, text: string): Promise<void> {
  await connection.files.write(path, Readable.from([Buffer.from(text)]));
}

export async function readText(connection: AgentConnection, path: string): Promise<string> {
  return collect(await connection.files.read(path));
}

/**
 * Polls until `check` returns a value (not undefined) or the deadline passes. Tests wait on an
 * observable condition, never on a fixed sleep.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
