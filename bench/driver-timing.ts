/**
 * What the driver benches (gvisor, microvm) time alike: a sandbox's first exec output, and many
 * creates at once, each to its first output.
 */
import type { AgentConnection, SandboxDriver, SandboxHandle, SandboxSpec } from "@polydev/core";
import { fmt, timeIt } from "./stats.js";

export interface ConcurrentCreates {
  count: number;
  failures: number;
  totalMs: number;
  errors: string[];
}

/** Resolves at the first stdout byte of `echo` run through the connection. */
function firstOutput(connection: AgentConnection): Promise<void> {
  return new Promise((resolve, reject) => {
    connection.exec({ argv: ["/bin/echo", "first"] }).then((child) => {
      child.stdout.once("data", () => resolve());
      child.stdout.resume();
      child.stderr.resume();
      child.exited.then(
        () => undefined,
        () => undefined,
      );
    }, reject);
  });
}

export async function connectToFirstOutput(driver: SandboxDriver, handle: SandboxHandle): Promise<void> {
  const connection = await driver.connect(handle);
  try {
    await firstOutput(connection);
  } finally {
    await connection.close();
  }
}

export async function createToFirstOutput(driver: SandboxDriver, spec: SandboxSpec): Promise<SandboxHandle> {
  const handle = await driver.create(spec);
  await connectToFirstOutput(driver, handle);
  return handle;
}

/** `count` creates started together; failures are counted and the first few kept. */
export async function concurrentCreates(
  driver: SandboxDriver,
  count: number,
  spec: () => SandboxSpec,
): Promise<ConcurrentCreates> {
  const errors: string[] = [];
  const run = await timeIt(() =>
    Promise.all(
      Array.from({ length: count }, () =>
        createToFirstOutput(driver, spec()).then(
          () => true,
          (error: unknown) => {
            errors.push(String(error));
            return false;
          },
        ),
      ),
    ),
  );
  return {
    count,
    failures: run.value.filter((ok) => !ok).length,
    totalMs: run.ms,
    errors: errors.slice(0, 3),
  };
}

export function concurrentLine(result: ConcurrentCreates): string {
  const firstErrors = result.errors.length > 0 ? ` (first errors: ${result.errors.join(" | ")})` : "";
  return `Concurrent creates: ${result.count}, failures ${result.failures}, total ${fmt(result.totalMs)} ms${firstErrors}`;
}
