/**
 * What every client command shares: argument parsing that turns mistakes into usage errors,
 * exit codes scripts can trust, one way to print API errors, spinners, prompts and tables.
 */
import { constants } from "node:os";
import type { ParseArgsConfig } from "node:util";
import { parseArgs } from "node:util";
import { PolydevApiError } from "@polydev/sdk";
import ora from "ora";

/** 0 ok, 1 the operation failed, 2 the command line was wrong. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A mistake on the command line: printed with a pointer to --help, exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A failure explained in plain words (not an API answer), exit 1. */
export class CommandError extends Error {
  override name = "CommandError";
}

interface OptionSpec {
  type: "string" | "boolean";
  multiple?: boolean;
  short?: string;
}
type OptionSpecs = Record<string, OptionSpec>;
type OptionValue<S extends OptionSpec> = S["type"] extends "string"
  ? S["multiple"] extends true
    ? string[]
    : string
  : S["multiple"] extends true
    ? boolean[]
    : boolean;

export interface ParsedCommand<T extends OptionSpecs> {
  values: { [K in keyof T]?: OptionValue<T[K]> };
  positionals: string[];
}

/**
 * parseArgs with `--help` built in and its errors turned into usage errors. Answers undefined
 * when help was printed.
 */
export function parseCommand<const T extends OptionSpecs>(
  argv: string[],
  options: T,
  help: string,
): ParsedCommand<T> | undefined {
  const config: ParseArgsConfig = {
    args: argv,
    options: { ...options, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(config);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (parsed.values.help === true) {
    process.stdout.write(help);
    return undefined;
  }
  return { values: parsed.values as ParsedCommand<T>["values"], positionals: parsed.positionals };
}

/** Runs a command body and maps what it throws to a message on stderr and an exit code. */
export async function runCommand(helpHint: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    return reportError(error, helpHint);
  }
}

export function reportError(error: unknown, helpHint: string): number {
  if (error instanceof UsageError) {
    process.stderr.write(`polydev: ${error.message}\nRun '${helpHint} --help' for usage.\n`);
    return EXIT_USAGE;
  }
  if (error instanceof PolydevApiError) {
    process.stderr.write(`polydev: ${error.message} (${error.code})\n`);
    return EXIT_FAILED;
  }
  process.stderr.write(`polydev: ${describe(error)}\n`);
  return EXIT_FAILED;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // fetch hides the reason (refused, unknown host) in its cause.
  const cause = error.cause instanceof Error ? error.cause : undefined;
  if (error.message === "fetch failed" && cause)
    return `cannot reach the server: ${cause.message} (is it running? check POLYDEV_URL or 'polydev login')`;
  return error.message;
}

/** Shows a spinner on stderr while `work` runs, only when stderr is a terminal. */
export async function withSpinner<T>(text: string, work: () => Promise<T>): Promise<T> {
  if (!process.stderr.isTTY) return work();
  const spinner = ora({ text, stream: process.stderr }).start();
  try {
    const result = await work();
    spinner.stop();
    return result;
  } catch (error) {
    spinner.stop();
    throw error;
  }
}

/** Aligned columns, header first. */
export function formatTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows)
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** "12s", "5m", "3h", "2d": how long ago an ISO time was. */
export function formatAge(iso: string, nowMs = Date.now()): string {
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** A shell-style exit code for a remote process: its own, 128+n for a signal, 124 for a timeout. */
export function remoteExitCode(exit: { exitCode: number | null; signal: string | null; timedOut?: boolean }) {
  if (exit.timedOut) return 124;
  if (exit.exitCode !== null) return exit.exitCode;
  const number = exit.signal ? constants.signals[exit.signal as NodeJS.Signals] : undefined;
  return number ? 128 + number : EXIT_FAILED;
}

/** Reads all of stdin as text (for piped secrets and prompts). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString("utf8");
}

/** Piped input past the line an earlier question consumed, kept for the next question. */
let unreadInput = "";

/**
 * Asks on the terminal. With `hidden`, what is typed is not echoed (API keys). Without a terminal
 * it reads one line from stdin, so scripts can pipe answers in.
 */
export async function ask(question: string, options: { hidden?: boolean } = {}): Promise<string> {
  process.stderr.write(question);
  const stdin = process.stdin;
  const raw = options.hidden === true && stdin.isTTY;
  let answer = "";
  /** True once a line is complete; what follows it is kept for the next question. */
  const take = (text: string): boolean => {
    for (let i = 0; i < text.length; i++) {
      const char = text[i];
      if (char === "\u0003") throw new CommandError("cancelled");
      if (char === "\r" || char === "\n") {
        unreadInput = text.slice(i + (char === "\r" && text[i + 1] === "\n" ? 2 : 1));
        return true;
      }
      if (char === "\u007f" || char === "\b") answer = answer.slice(0, -1);
      else answer += char;
    }
    return false;
  };
  const leftover = unreadInput;
  unreadInput = "";
  // Piped input that has already ended answers every further question with what is left.
  if (take(leftover) || stdin.readableEnded) return answer.trim();
  if (raw) stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      const finish = (error?: unknown): void => {
        stdin.off("data", onData);
        stdin.off("end", onEnd);
        if (raw) process.stderr.write("\n");
        if (error) reject(error);
        else resolve(answer.trim());
      };
      const onEnd = (): void => finish();
      const onData = (chunk: Buffer): void => {
        try {
          if (take(chunk.toString("utf8"))) finish();
        } catch (error) {
          finish(error);
        }
      };
      stdin.on("data", onData);
      stdin.once("end", onEnd);
    });
  } finally {
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  }
}
