/** Runs the real `polydev` entry point as a child process, the way a user's shell would. */
import { spawn } from "node:child_process";
import { resolve } from "node:path";

export const REPO_ROOT = resolve(import.meta.dirname, "../../../..");
/** Source through tsx, so the tests need no build step. */
export const CLI_ARGV = [
  "--conditions=source",
  "--import",
  "tsx",
  resolve(REPO_ROOT, "packages/cli/src/main.ts"),
];

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    input?: string | Buffer;
    timeoutMs?: number;
    /** Sends a signal once the output so far matches (a user pressing Ctrl-C at that moment). */
    signalWhen?: { output: RegExp; signal: NodeJS.Signals };
  } = {},
): Promise<CliResult> {
  const child = spawn(process.execPath, [...CLI_ARGV, ...args], {
    cwd: REPO_ROOT,
    env: options.env ?? {},
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let signalled = false;
  const maybeSignal = (): void => {
    if (signalled || !options.signalWhen?.output.test(stdout + stderr)) return;
    signalled = true;
    child.kill(options.signalWhen.signal);
  };
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    maybeSignal();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    maybeSignal();
  });
  child.stdin.end(options.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  return new Promise((done, fail) => {
    child.once("error", fail);
    child.once("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}
