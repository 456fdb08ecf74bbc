/**
 * A real Polydev server in a child process (see child-server-main.ts), for tests that must see
 * the process itself: that it survives a fault, what it logged, how it restarts after SIGKILL.
 * Every wait here is bounded: a test that would hang fails with what it was waiting for.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { NamespaceDriver } from "@polydev/driver-namespace";
import type { ConfigInput } from "../config.js";
import { createLogger } from "../logger.js";
import type { ChildServerSpec } from "./child-server-main.js";
import { ApiClient } from "./harness.js";

const repoRoot = resolve(import.meta.dirname, "../../../..");
const MAIN = join(import.meta.dirname, "child-server-main.ts");

/** Resolves with the promise's value, or rejects naming `what` once `ms` have passed. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function until(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 25));
  }
}

/**
 * Log lines that mean a failure escaped its request or stream: the process safety net caught it
 * (`processFault`), Fastify met an error after a stream had started (the client then waits
 * forever), the error handler turned something unknown into a 500, or a stream ended with an
 * unknown error (see http/serve-sse.ts).
 */
export function isUnhandledFault(line: Record<string, unknown>): boolean {
  return (
    line.processFault !== undefined ||
    line.msg === "Promise errored, but reply.sent = true was set" ||
    line.msg === "unhandled error" ||
    line.msg === "stream failed unexpectedly"
  );
}

function describeLogLine(line: Record<string, unknown>): string {
  const err = typeof line.err === "object" && line.err !== null ? (line.err as Record<string, unknown>) : {};
  const stack = typeof err.stack === "string" ? err.stack.split("\n").slice(1, 4).join(" <") : "";
  return `${String(line.msg)}: ${String(err.message ?? "")} ${stack}`.trim();
}

export interface ChildServer {
  url: string;
  adminKey: string;
  dataDir: string;
  logFile: string;
  api: ApiClient;
  process: ChildProcess;
  /** Everything the child wrote to stdout and stderr so far. */
  output(): string;
  alive(): boolean;
  /** Writes one control line (see child-server-main.ts) and waits for the answer matching `expect`. */
  command(line: string, expect: RegExp, ms?: number): Promise<string>;
  /** Waits for output matching `pattern` printed after position `from` of output() (default 0). */
  waitForOutput(pattern: RegExp, ms?: number, from?: number): Promise<string>;
  /**
   * The log lines that mean a failure escaped its request or stream (see isUnhandledFault), each
   * shortened to what a failing assertion should show: message, error and where it was thrown.
   */
  unhandledFaults(): Promise<string[]>;
  logLines(): Promise<Record<string, unknown>[]>;
  kill9(): Promise<void>;
  /** SIGTERM, then SIGKILL if it does not exit in time. Sandboxes stay (as after `polydev up`). */
  stop(): Promise<void>;
}

export interface ChildServerOptions {
  config?: ConfigInput;
  /** Reuse a data directory (a restart); default: a fresh one. */
  dataDir?: string;
  standInLogins?: boolean;
  /** Give the server an image store on plain directories (see child-server-main.ts). */
  imageStore?: boolean;
  /** How long the start may take (default 30 s; several servers starting at once on a busy host take longer). */
  startTimeoutMs?: number;
}

export async function startChildServer(options: ChildServerOptions = {}): Promise<ChildServer> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "polydev-child-")));
  // One log file per start, so a restart's lines are not mixed with the crashed run's.
  const logFile = join(dataDir, `child-server-${Date.now()}.log`);
  const spec: ChildServerSpec = {
    config: { ...options.config, dataDir },
    logFile,
    ...(options.standInLogins ? { standInLogins: true } : {}),
    ...(options.imageStore ? { imageStore: true } : {}),
  };
  const child = spawn(
    process.execPath,
    ["--conditions=source", "--import", "tsx", MAIN, JSON.stringify(spec)],
    {
      cwd: repoRoot,
      env: { ...process.env },
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let output = "";
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const wake of waiters) wake();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;

  const waitForOutput = (pattern: RegExp, ms = 30_000, from = 0): Promise<string> =>
    within(
      new Promise<string>((resolveMatch, reject) => {
        const check = (): void => {
          const match = pattern.exec(output.slice(from));
          if (match) {
            waiters.delete(check);
            resolveMatch(match[0]);
          } else if (!alive()) {
            waiters.delete(check);
            reject(new Error(`the child server exited (${child.exitCode ?? child.signalCode}): ${output}`));
          }
        };
        waiters.add(check);
        child.once("exit", check);
        check();
      }),
      ms,
      `${pattern} from the child server; output so far: ${output.slice(-2000)}`,
    );

  const listening = await waitForOutput(/listening (\S+) (\S+)\n/, options.startTimeoutMs);
  const [, url = "", printedKey = "-"] = /listening (\S+) (\S+)/.exec(listening) ?? [];
  const adminKey =
    printedKey === "-" ? (await readFile(join(dataDir, "admin-api-key"), "utf8")).trim() : printedKey;

  const logLines = async (): Promise<Record<string, unknown>[]> => {
    const text = await readFile(logFile, "utf8").catch(() => "");
    return text
      .split("\n")
      .filter((line) => line.trim().length > 0)
      .map((line) => {
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          return { unparsable: line };
        }
      });
  };

  return {
    url,
    adminKey,
    dataDir,
    logFile,
    api: new ApiClient(url, adminKey),
    process: child,
    output: () => output,
    alive,
    waitForOutput: (pattern, ms, from) => waitForOutput(pattern, ms, from),
    async command(line, expect, ms = 10_000) {
      const from = output.length;
      child.stdin?.write(`${line}\n`);
      return waitForOutput(expect, ms, from);
    },
    logLines,
    async unhandledFaults() {
      return (await logLines()).filter(isUnhandledFault).map(describeLogLine);
    },
    async kill9() {
      if (!alive()) return;
      child.kill("SIGKILL");
      await within(exited, 10_000, "the child server to exit after SIGKILL");
    },
    async stop() {
      if (!alive()) return;
      child.kill("SIGTERM");
      try {
        await within(exited, 15_000, "the child server to stop");
      } catch {
        child.kill("SIGKILL");
        await within(exited, 10_000, "the child server to exit after SIGKILL");
      }
    },
  };
}

/** Destroys every sandbox left under a data directory, then removes the directory. */
export async function removeDataDir(dataDir: string): Promise<void> {
  const driver = new NamespaceDriver({ rootDir: join(dataDir, "sandboxes"), log: createLogger("silent") });
  for (const observed of await driver.list().catch(() => [])) {
    await driver.destroy(observed.handle).catch(() => undefined);
  }
  await rm(dataDir, { recursive: true, force: true });
}

/** Where a sandbox lives on the host, read from the namespace driver's meta.json. */
export interface HostFootprint {
  sandboxId: string;
  hostUid: number;
  initPid: number;
  cgroupPaths: string[];
}

export async function hostFootprint(dataDir: string, sandboxId: string): Promise<HostFootprint> {
  const meta = JSON.parse(await readFile(join(dataDir, "sandboxes", sandboxId, "meta.json"), "utf8")) as {
    hostUid: number;
    initPid: number;
    cgroupPaths: string[];
  };
  return { sandboxId, hostUid: meta.hostUid, initPid: meta.initPid, cgroupPaths: meta.cgroupPaths };
}

/**
 * What of a sandbox is still on the host: its cgroup directories, and processes running as its
 * host uid. A uid freed by a destroy may already belong to a sandbox created since; a process
 * in another sandbox's cgroup is that sandbox's, not a leftover.
 */
export async function hostLeftovers(footprint: HostFootprint): Promise<string[]> {
  const left = footprint.cgroupPaths.filter((path) => existsSync(path)).map((path) => `cgroup ${path}`);
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, "utf8").catch(() => "");
    const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
    if (!uids?.slice(1).some((uid) => Number(uid) === footprint.hostUid)) continue;
    const cgroups = await readFile(`/proc/${entry}/cgroup`, "utf8").catch(() => "");
    const sandboxCgroups = [...cgroups.matchAll(/\/polydev\/([A-Za-z0-9_-]+)/g)].map((m) => m[1]);
    if (sandboxCgroups.some((id) => id !== footprint.sandboxId)) continue;
    const name = /^Name:\s+(.*)$/m.exec(status)?.[1] ?? "?";
    left.push(`process ${entry} (${name}) as uid ${footprint.hostUid}`);
  }
  return left;
}

/** Whether the sandbox's cgroup is frozen (cgroup v1 freezer or v2 cgroup.freeze). */
export async function isFrozen(footprint: HostFootprint): Promise<boolean> {
  const v1 = footprint.cgroupPaths.find((path) => path.includes("/freezer/"));
  if (v1) return (await readFile(join(v1, "freezer.state"), "utf8")).trim() === "FROZEN";
  const [v2] = footprint.cgroupPaths;
  if (!v2) throw new Error(`sandbox ${footprint.sandboxId} has no cgroup`);
  return /^frozen 1$/m.test(await readFile(join(v2, "cgroup.events"), "utf8"));
}
