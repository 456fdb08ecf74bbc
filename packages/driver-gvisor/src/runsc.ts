/**
 * Runs runsc with the driver's global flags. Arguments are the driver's own (paths it made and
 * server-chosen ids); runsc gets a fixed environment, never the server's.
 */
import { spawn } from "node:child_process";
import { PolydevError } from "@polydev/core";

/** runsc's output kept per call: enough for `list` of many sandboxes and an error message. */
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

export interface RunscOptions {
  runscPath: string;
  /** runsc's --root: its state directory, one per driver instance. */
  stateDir: string;
  platform: string;
}

export interface RunscResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunscCallOptions {
  /** runsc's own log (--log): where a detached call's errors go. */
  logFile?: string;
  signal?: AbortSignal;
  /** For `run --detach`: no stdio at all. */
  detached?: boolean;
  /** Where the Sentry writes its stack if it panics (--panic-log), for `run`. */
  panicLog?: string;
  /**
   * For `run` and `restore`: "sandbox" gives the Sentry its own network stack on the interfaces
   * of the network namespace the spec names (network "egress", egress-network.ts); default "none".
   */
  network?: "none" | "sandbox";
}

export function runscArgs(options: RunscOptions, call: RunscCallOptions): string[] {
  return [
    `--root=${options.stateDir}`,
    `--platform=${options.platform}`,
    // "sandbox" only in a sandbox's own network namespace (it refuses the host's root netns).
    `--network=${call.network ?? "none"}`,
    // The agent makes its socket in a host directory bound into the sandbox.
    "--host-uds=create",
    ...(call.logFile === undefined ? [] : [`--log=${call.logFile}`]),
    ...(call.panicLog === undefined ? [] : [`--panic-log=${call.panicLog}`]),
  ];
}

/**
 * runsc 20221219 decides it is in the host's root network namespace when
 * /proc/sys/net/core/rmem_default exists, which kernels since 6.x show in every network
 * namespace: it then refuses `--network=sandbox` even in a sandbox's own namespace. It runs in a
 * mount namespace of its own where /proc/sys/net is an empty read-only tmpfs (nothing else it
 * reads lives there; its Sentry has its own /proc). Returns unshare's arguments.
 */
function hideRootNetnsMarker(runscPath: string, argv: string[]): string[] {
  return [
    "--mount",
    "--propagation=private",
    "/bin/sh",
    "-c",
    'mount -t tmpfs -o size=4k,mode=0555,ro none /proc/sys/net && exec "$@"',
    "polydev-runsc",
    runscPath,
    ...argv,
  ];
}

export function runsc(
  options: RunscOptions,
  args: readonly string[],
  call: RunscCallOptions = {},
): Promise<RunscResult> {
  return new Promise((resolve, reject) => {
    const argv = [...runscArgs(options, call), ...args];
    const [file, ...fileArgs] =
      call.network === "sandbox"
        ? ["/usr/bin/unshare", ...hideRootNetnsMarker(options.runscPath, argv)]
        : [options.runscPath, ...argv];
    const child = spawn(file ?? options.runscPath, fileArgs, {
      // A detached sandbox keeps runsc's stdio as its own container's stdio: never give it a
      // pipe (it would never close, and the sandbox could write to it) nor a host file.
      stdio: call.detached === true ? "ignore" : ["ignore", "pipe", "pipe"],
      env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
      ...(call.signal ? { signal: call.signal } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    child.stdout?.on("data", (chunk: Buffer) => {
      if (outBytes < MAX_OUTPUT_BYTES) out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      if (errBytes < 64 * 1024) err.push(chunk);
      errBytes += chunk.length;
    });
    child.once("error", (error) =>
      reject(
        new PolydevError("driver_unavailable", `cannot run ${options.runscPath}: ${error.message}`, {
          cause: error,
        }),
      ),
    );
    child.once("close", (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}

/** runsc, failing with `sandbox_failed` and runsc's own words when it exits non-zero. */
export async function runscOk(
  options: RunscOptions,
  args: readonly string[],
  extra: RunscCallOptions = {},
): Promise<string> {
  const result = await runsc(options, args, extra);
  if (result.code !== 0) {
    throw new PolydevError(
      "sandbox_failed",
      `runsc ${args[0]} failed: ${result.stderr.trim().slice(-2000)}`,
      {
        details: { exitCode: result.code },
      },
    );
  }
  return result.stdout;
}
