/**
 * Background processes of a namespace sandbox, kept by the sandbox itself: the init's `--bg-*`
 * helpers (native/background.c) start a keeper inside the sandbox that owns the process, copies
 * its output into the sandbox's own tmpfs (capped per process, charged to the sandbox's memory)
 * and records its exit. The host stores nothing per process and holds no descriptor of it, so a
 * process's output can never grow a host file, and a restarted server finds every process again.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import type {
  AttachOptions,
  BackgroundLauncher,
  BackgroundProcessInfo,
  LaunchedProcess,
  LaunchRequest,
} from "@polydev/core";
import { notFound, PolydevError } from "@polydev/core";
import { EXEC_SERVER_IN_SANDBOX } from "./bwrap-args.js";
import { runHelper } from "./helper-output.js";
import { signalNameOf } from "./signal-names.js";

/** What one background process may keep of its output (the rest is discarded, with a note). */
export const BACKGROUND_OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024;
const ID_PATTERN = /^proc_[0-9a-f]{12}$/;
/** Exit codes of the helpers (see background.c). */
const HelperExit = { notFound: 3, notRunning: 4, exists: 5 } as const;

export class SandboxBackground implements BackgroundLauncher {
  constructor(
    private readonly launch: (request: LaunchRequest) => LaunchedProcess,
    private readonly helper: (args: string[]) => LaunchedProcess,
  ) {}

  async start(request: LaunchRequest): Promise<BackgroundProcessInfo> {
    // The id is the host's; a collision with an existing one (vanishingly rare) picks another.
    for (let attempt = 0; attempt < 3; attempt++) {
      const id = `proc_${randomBytes(6).toString("hex")}`;
      const result = await runHelper(
        this.launch({
          ...request,
          argv: [
            EXEC_SERVER_IN_SANDBOX,
            "--bg-start",
            id,
            String(BACKGROUND_OUTPUT_LIMIT_BYTES),
            "--",
            ...request.argv,
          ],
        }),
      );
      if (result.exitCode === HelperExit.exists) continue;
      if (result.exitCode !== 0) throw helperFailure("start the process", result.stderr);
      return parseInfo(result.stdout, id);
    }
    throw new PolydevError("conflict", "could not pick a free background process id; try again");
  }

  async list(): Promise<BackgroundProcessInfo[]> {
    const result = await runHelper(this.helper(["--bg-list"]));
    if (result.exitCode !== 0) throw helperFailure("list the processes", result.stderr);
    return result.stdout
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => parseInfo(line))
      .sort((a, b) => a.startedAt - b.startedAt);
  }

  async get(id: string): Promise<BackgroundProcessInfo> {
    if (!ID_PATTERN.test(id)) throw notFound("process", id);
    const result = await runHelper(this.helper(["--bg-get", id]));
    if (result.exitCode === HelperExit.notFound) throw notFound("process", id);
    if (result.exitCode !== 0) throw helperFailure("read the process", result.stderr);
    return parseInfo(result.stdout, id);
  }

  async attach(id: string, options: AttachOptions = {}): Promise<Readable> {
    const fromOffset = options.fromOffset ?? 0;
    if (!Number.isSafeInteger(fromOffset) || fromOffset < 0) {
      throw new PolydevError("invalid_request", "fromOffset must be a byte offset (0 or more)");
    }
    await this.get(id);
    const follow = options.follow ?? true;
    const reader = this.helper(["--bg-attach", id, String(fromOffset), follow ? "1" : "0"]);
    reader.stdin.on("error", () => undefined);
    reader.stdin.end();
    reader.stderr.resume();
    const output = reader.stdout;
    const stop = (): void => reader.kill();
    options.signal?.addEventListener("abort", stop, { once: true });
    output.once("close", () => {
      options.signal?.removeEventListener("abort", stop);
      stop();
    });
    reader.exited
      .then((exit) => {
        // Cut off (the sandbox went away, the process vanished): never an end that looks whole.
        if (exit.exitCode !== 0 && !output.destroyed) {
          output.destroy(
            new PolydevError(
              "sandbox_not_running",
              `the output of process ${id} ended early: the sandbox stopped`,
            ),
          );
        }
      })
      .catch(() => undefined);
    return output;
  }

  async signal(id: string, signal: NodeJS.Signals): Promise<void> {
    if (!ID_PATTERN.test(id)) throw notFound("process", id);
    const number = constants.signals[signal];
    if (number === undefined) throw new PolydevError("invalid_request", `unknown signal ${signal}`);
    const result = await runHelper(this.helper(["--bg-signal", id, String(number)]));
    if (result.exitCode === HelperExit.notFound) throw notFound("process", id);
    if (result.exitCode === HelperExit.notRunning) {
      throw new PolydevError("process_not_running", `process ${id} has already exited`);
    }
    if (result.exitCode !== 0) throw helperFailure("signal the process", result.stderr);
  }
}

function helperFailure(what: string, stderr: string): PolydevError {
  return new PolydevError(
    "command_failed",
    `could not ${what} in the sandbox${stderr.length > 0 ? `: ${stderr.slice(0, 300)}` : ""}`,
  );
}

/** One line of the helper's JSON, checked field by field: the sandbox wrote it. */
function parseInfo(line: string, expectedId?: string): BackgroundProcessInfo {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new PolydevError("command_failed", "the sandbox gave an unreadable answer about its process");
  }
  const bad = (): PolydevError =>
    new PolydevError("command_failed", "the sandbox gave a malformed answer about its process");
  if (typeof value !== "object" || value === null) throw bad();
  const info = value as Record<string, unknown>;
  const { id, argv, startedAt, state, exitCode, signal, outputBytes } = info;
  if (typeof id !== "string" || !ID_PATTERN.test(id) || (expectedId !== undefined && id !== expectedId))
    throw bad();
  if (!Array.isArray(argv) || !argv.every((arg) => typeof arg === "string")) throw bad();
  if (typeof startedAt !== "number" || !Number.isFinite(startedAt)) throw bad();
  if (state !== "running" && state !== "exited") throw bad();
  if (exitCode !== null && (typeof exitCode !== "number" || !Number.isInteger(exitCode))) throw bad();
  if (signal !== null && (typeof signal !== "number" || !Number.isInteger(signal))) throw bad();
  if (typeof outputBytes !== "number" || !Number.isSafeInteger(outputBytes) || outputBytes < 0) throw bad();
  return {
    id,
    argv: argv as string[],
    startedAt,
    state,
    exitCode: state === "exited" ? exitCode : null,
    signal:
      state === "exited" && typeof signal === "number" ? (signalNameOf(signal) ?? `SIG${signal}`) : null,
    outputBytes,
  };
}
