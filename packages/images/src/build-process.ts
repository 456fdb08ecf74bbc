import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { PolydevError } from "@polydev/core";

/** The environment every build tool runs with: nothing of the server's own environment. */
export const BUILD_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8",
  LC_ALL: "C.UTF-8",
  DEBIAN_FRONTEND: "noninteractive",
  HOME: "/root",
});

/** How many of the last output lines a failure carries in its details. */
const FAILURE_TAIL_LINES = 40;
/** A longer line is cut: a progress bar or a binary blob must not grow memory without bound. */
const MAX_LINE_CHARS = 4096;

export interface BuildProcessOptions {
  cwd?: string;
  /** Each line of stdout and stderr, as it comes. */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** Names the step in errors ("mmdebstrap", "npm install"). */
  what: string;
  /** A descriptor of this process the child gets as its fd 3 (the lock file of `flock 3`). */
  stdio3?: number;
  /** Added to `BUILD_ENV`: the operator's proxy or CA certificates (`BuildEnvironment`). */
  env?: Readonly<Record<string, string>>;
}

/**
 * What an operator may hand a build beyond `BUILD_ENV`: how this host reaches Debian's mirror and
 * the npm registry (a proxy, a TLS-intercepting proxy's CA certificates, a registry mirror).
 * Chosen by the server's configuration, never by a request.
 */
export const BUILD_ENV_PASS_THROUGH: readonly string[] = Object.freeze([
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "NODE_EXTRA_CA_CERTS",
  "npm_config_registry",
  "npm_config_cafile",
]);

/** Picks the `BUILD_ENV_PASS_THROUGH` variables out of an environment (the server's, at start-up). */
export function buildEnvironmentFrom(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of BUILD_ENV_PASS_THROUGH) {
    const value = env[name];
    if (value !== undefined && value !== "") picked[name] = value;
  }
  return picked;
}

/**
 * Runs `command` with a fixed argv and `BUILD_ENV`, streaming its output lines, in its own process
 * group so an abort kills the whole tree (SIGKILL: a build is thrown away, never resumed). Resolves
 * on exit code 0; otherwise rejects with `command_failed` carrying the last lines of output, or with
 * the signal's reason when aborted.
 */
export function runBuildProcess(
  command: string,
  args: readonly string[],
  options: BuildProcessOptions,
): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? "/",
      env: { ...(options.env ?? {}), ...BUILD_ENV },
      detached: true,
      stdio:
        options.stdio3 === undefined
          ? ["ignore", "pipe", "pipe"]
          : ["ignore", "pipe", "pipe", options.stdio3],
    });
    const tail: string[] = [];
    const emit = (line: string): void => {
      const cut = line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line;
      tail.push(cut);
      if (tail.length > FAILURE_TAIL_LINES) tail.shift();
      try {
        options.onLine?.(cut);
      } catch {
        // A listener's failure is the listener's problem, not the build's.
      }
    };
    const splitter = (): ((chunk: Buffer) => void) => {
      let pending = "";
      return (chunk) => {
        pending += chunk.toString("utf8");
        // Progress bars redraw with a carriage return; each redraw is a line to the listener.
        const parts = pending.split(/\r\n|\n|\r/);
        pending = parts.pop() ?? "";
        if (pending.length > MAX_LINE_CHARS) {
          parts.push(pending);
          pending = "";
        }
        for (const part of parts) if (part.length > 0) emit(part);
      };
    };
    child.stdout?.on("data", splitter());
    child.stderr?.on("data", splitter());

    const kill = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    };
    const onAbort = (): void => kill();
    signal?.addEventListener("abort", onAbort, { once: true });

    child.once("error", (error) => {
      signal?.removeEventListener("abort", onAbort);
      reject(
        new PolydevError("internal", `${options.what} could not start: ${error.message}`, {
          details: { command },
          cause: error,
        }),
      );
    });
    child.once("close", (code, exitSignal) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      if (code === 0) {
        resolve();
        return;
      }
      const how = exitSignal === null ? `exited with ${code}` : `was killed by ${exitSignal}`;
      reject(
        new PolydevError("command_failed", `${options.what} ${how}`, {
          details: { exitCode: code, signal: exitSignal, output: tail.join("\n") },
        }),
      );
    });
  });
}

/**
 * Removes a build's directory tree without crossing into another file system: if a killed build
 * left a mount inside it (a bind of /dev or /proc), that mount's contents are never touched.
 */
export async function removeBuildDirectory(path: string): Promise<void> {
  await runBuildProcess("/bin/rm", ["-rf", "--one-file-system", "--", path], {
    what: "removing a build directory",
  });
}

/**
 * Throws `feature_unavailable` naming what is missing when this process cannot build images: it
 * must be root (mmdebstrap --mode=root, chown to the image's owners) and have `tools`.
 */
export function requireBuildTools(what: string, tools: readonly string[]): void {
  if (process.getuid?.() !== 0) {
    throw new PolydevError(
      "feature_unavailable",
      `building ${what} needs root (the server runs as uid ${process.getuid?.()})`,
    );
  }
  const missing = tools.filter((tool) => !existsSync(tool));
  if (missing.length > 0) {
    throw new PolydevError(
      "feature_unavailable",
      `building ${what} needs ${missing.join(", ")}: run scripts/ensure.sh (or apt-get install mmdebstrap patchelf)`,
      { details: { missing } },
    );
  }
}
