/**
 * Test-only entry point: a real Polydev server in its own process (real SQLite file, real
 * bubblewrap sandboxes), started by testing/child-server.ts so a test can kill it with SIGKILL,
 * watch it crash, and read everything it logged.
 *
 * Its settings arrive as one JSON argument (`ChildServerSpec`). Two test-only faults are driven
 * over stdin, one command a line, each acknowledged on stdout:
 *   `close-agent <sandboxId>`  closes the server's agent connection(s) to that sandbox, as a
 *                              dropped connection would (→ `closed-agent <sandboxId> <count>`)
 *   `hang <op> <before|after>` makes the next driver hibernate/resume stop before or after it
 *                              acts (→ `hang-armed <op>`, then `hanging <op> <point>` once it is
 *                              stuck there), until the process is killed or
 *   `release <op>`             lets it go on (→ `released <op>`)
 *   `escape rejection|exception` lets a promise rejection or an exception escape unhandled, as
 *                              a bug would (→ `escaped <kind>`), to test the safety net
 * None of this is reachable from the server's configuration or API.
 */
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { AgentConnection, SandboxDriver, SandboxHandle } from "@polydev/core";
import { NamespaceDriver } from "@polydev/driver-namespace";
import pino from "pino";
import type { ConfigInput } from "../config.js";
import { parseConfig } from "../config.js";
import { createLogger } from "../logger.js";
import { startServer } from "../server.js";
import { PlainImageStorage } from "./plain-image-storage.js";
import { RecordingRunStep } from "./recording-run-step.js";
import { STAND_IN_LOGIN_FLOWS } from "./stand-in-logins.js";

export interface ChildServerSpec {
  config: ConfigInput;
  /** The server's JSON log lines go here. */
  logFile: string;
  /** Replace the login CLIs with the stand-ins of stand-in-logins.ts. */
  standInLogins?: boolean;
  /** An image store on plain directories, RUN steps through the recording stand-in runner. */
  imageStore?: boolean;
}

type HangOperation = "hibernate" | "resume";
type HangPoint = "before" | "after";

/** The namespace driver with the two test faults above wrapped around it. */
class FaultyDriver implements SandboxDriver {
  readonly name: string;
  private readonly agents = new Map<string, Set<AgentConnection>>();
  private readonly hangs = new Map<HangOperation, HangPoint>();
  private readonly releases = new Map<HangOperation, () => void>();

  constructor(private readonly inner: SandboxDriver) {
    this.name = inner.name;
  }

  hangNext(operation: HangOperation, point: HangPoint): void {
    this.hangs.set(operation, point);
  }

  release(operation: HangOperation): boolean {
    const release = this.releases.get(operation);
    this.releases.delete(operation);
    release?.();
    return release !== undefined;
  }

  async closeAgents(sandboxId: string): Promise<number> {
    const open = [...(this.agents.get(sandboxId) ?? [])];
    this.agents.delete(sandboxId);
    await Promise.all(open.map((agent) => agent.close()));
    return open.length;
  }

  probe: SandboxDriver["probe"] = (signal) => this.inner.probe(signal);
  create: SandboxDriver["create"] = (spec, signal) => this.inner.create(spec, signal);
  destroy: SandboxDriver["destroy"] = (handle, signal) => this.inner.destroy(handle, signal);
  list: SandboxDriver["list"] = (signal) => this.inner.list(signal);
  isAlive: SandboxDriver["isAlive"] = (handle, signal) => this.inner.isAlive(handle, signal);
  stats: SandboxDriver["stats"] = (handle, signal) => this.inner.stats(handle, signal);
  logs: SandboxDriver["logs"] = (handle, signal) => this.inner.logs(handle, signal);

  async connect(handle: SandboxHandle, signal?: AbortSignal): Promise<AgentConnection> {
    const agent = await this.inner.connect(handle, signal);
    let open = this.agents.get(handle.sandboxId);
    if (!open) {
      open = new Set();
      this.agents.set(handle.sandboxId, open);
    }
    open.add(agent);
    return agent;
  }

  hibernate(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    return this.act("hibernate", () => this.inner.hibernate(handle, signal));
  }

  resume(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    return this.act("resume", () => this.inner.resume(handle, signal));
  }

  private async act(operation: HangOperation, action: () => Promise<void>): Promise<void> {
    const point = this.hangs.get(operation);
    this.hangs.delete(operation);
    if (point === "before") await this.hang(operation, point);
    await action();
    if (point === "after") await this.hang(operation, point);
  }

  private hang(operation: HangOperation, point: HangPoint): Promise<void> {
    return new Promise<void>((resolve) => {
      this.releases.set(operation, resolve);
      process.stdout.write(`hanging ${operation} ${point}\n`);
    });
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? "{}") as ChildServerSpec;
  // Images only where a test asks (as in the harness): a pool per child server is costly.
  const config = parseConfig({
    host: "127.0.0.1",
    port: 0,
    logLevel: "info",
    ...spec.config,
    images: { enabled: false, ...spec.config.images },
  });
  const log = createLogger(config.logLevel, pino.destination({ dest: spec.logFile, sync: true }));
  let driver: FaultyDriver | undefined;
  const server = await startServer(config, {
    drivers: {
      namespace: ({ rootDir, log: driverLog }) => {
        driver = new FaultyDriver(new NamespaceDriver({ rootDir, log: driverLog }));
        return driver;
      },
    },
    log,
    ...(spec.standInLogins ? { loginFlows: STAND_IN_LOGIN_FLOWS } : {}),
    ...(spec.imageStore
      ? {
          images: ({ dataDir }: { dataDir: string }) => {
            const storage = new PlainImageStorage(join(dataDir, "storage"));
            return { storage, runStep: new RecordingRunStep(storage).run };
          },
        }
      : {}),
  });
  const faults = driver;
  if (!faults) throw new Error("the server did not build its driver");
  createInterface({ input: process.stdin }).on("line", (line) => {
    const [command, first, second] = line.trim().split(/\s+/);
    if (command === "close-agent" && first) {
      faults.closeAgents(first).then(
        (count) => process.stdout.write(`closed-agent ${first} ${count}\n`),
        (error: unknown) => process.stdout.write(`close-agent-failed ${first} ${String(error)}\n`),
      );
    } else if (command === "hang" && (first === "hibernate" || first === "resume")) {
      faults.hangNext(first, second === "after" ? "after" : "before");
      process.stdout.write(`hang-armed ${first}\n`);
    } else if (command === "escape" && first === "rejection") {
      // The point: a rejection nobody handles.
      Promise.reject(new Error("test-only escaped rejection"));
      process.stdout.write("escaped rejection\n");
    } else if (command === "escape" && first === "exception") {
      process.stdout.write("escaped exception\n");
      setImmediate(() => {
        throw new Error("test-only escaped exception");
      });
    } else if (command === "release" && (first === "hibernate" || first === "resume")) {
      process.stdout.write(faults.release(first) ? `released ${first}\n` : `nothing-to-release ${first}\n`);
    }
  });
  process.stdout.write(`listening ${server.url} ${server.firstAdminKey?.apiKey ?? "-"}\n`);
  const stop = (): void => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `child server failed to start: ${error instanceof Error ? error.stack : String(error)}\n`,
  );
  process.exit(1);
});
