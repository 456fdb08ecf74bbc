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

export interface TerminalRun {
  /** Everything the terminal printed (CR/LF as the line discipline made them). */
  output: string;
  exit: { exitCode: number | null; signal: string | null };
}

/** Runs a program on a terminal to completion, typing `input` (if any) once it started. */
export async function runInPty(
  connection: AgentConnection,
  argv: string[] | undefined,
  options: { env?: Record<string, string>; cwd?: string; input?: string; cols?: number; rows?: number } = {},
): Promise<TerminalRun> {
  const pty = await connection.openPty({
    ...(argv === undefined ? {} : { argv }),
    cols: options.cols ?? 200,
    rows: options.rows ?? 50,
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const output = collect(pty.output);
  if (options.input !== undefined) pty.write(options.input);
  const exit = await pty.exited;
  return { output: await output, exit: { exitCode: exit.exitCode, signal: exit.signal } };
}

/** Starts a background process, waits for it to exit and returns its whole captured output. */
export async function runInBackground(
  connection: AgentConnection,
  argv: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<{ output: string; exitCode: number | null; id: string }> {
  const started = await connection.startBackground({
    argv,
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const info = await waitFor(
    `background process ${started.id} to exit`,
    async () => {
      const current = await connection.getBackground(started.id);
      return current.state === "exited" ? current : undefined;
    },
    options.timeoutMs ?? 30_000,
  );
  const output = await collect(await connection.attachBackground(started.id, { follow: false }));
  return { output, exitCode: info.exitCode, id: started.id };
}
