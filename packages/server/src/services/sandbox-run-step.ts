/**
 * A Dockerfile RUN step, run the way Polydev runs everything: in a sandbox of the step's parent
 * image, as the step's user, with egress (package installs need it), and limits of its own. The
 * sandbox is the driver's alone (no record, no owner): a crash half-way leaves an orphan the
 * reconciler destroys, and no half image, because the layer is registered only after this
 * resolves. Its changes become the layer by the driver's snapshot (a copy-on-write clone of its
 * disk, whose `upper` directory is an overlay layer).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { NetworkMode, SandboxDriver, SandboxHandle, SandboxLimits } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { RunStep, RunStepRequest, RunStepResult } from "./image-ports.js";

export interface SandboxRunStepOptions {
  driver: SandboxDriver;
  /** The storage pool's root: layers go to `<root>/layers/<id>`. */
  storageRoot: string;
  limits: SandboxLimits;
  network: NetworkMode;
  /** Longest a step may run (default 30 min). */
  timeoutMs?: number;
  /** Keeps the reconciler from taking the step's sandbox (it has no row) for an orphan. */
  holds: { hold(sandboxId: string): void; release(sandboxId: string): void };
}

export function sandboxRunStep(options: SandboxRunStepOptions): RunStep {
  return (request) => runStep(options, request);
}

async function runStep(options: SandboxRunStepOptions, request: RunStepRequest): Promise<RunStepResult> {
  const { driver } = options;
  if (driver.snapshot === undefined) {
    throw new PolydevError(
      "feature_unavailable",
      `the ${driver.name} driver cannot snapshot, so it cannot build images`,
    );
  }
  // Hex: the layer directory is named after it, and storage pool paths are lowercase [a-z0-9.-].
  const suffix = randomBytes(9).toString("hex");
  const id = `bld_${suffix}`;
  // Held before it exists: the reconciler destroys driver sandboxes no row knows about.
  options.holds.hold(id);
  let handle: SandboxHandle;
  try {
    handle = await driver.create(
      { id, limits: options.limits, network: options.network, env: {}, image: request.parent },
      request.signal,
    );
  } catch (error) {
    options.holds.release(id);
    throw error;
  }
  try {
    const agent = await driver.connect(handle, request.signal);
    const process = await agent.exec(
      {
        argv: request.argv,
        cwd: request.workdir,
        env: { ...request.parent.env, ...request.env },
        timeoutMs: options.timeoutMs ?? 30 * 60_000,
        ...(request.user === undefined ? {} : { user: request.user }),
      },
      request.signal,
    );
    process.stdin.end();
    process.stdout.on("data", (chunk: Buffer) => request.onOutput(chunk.toString("utf8")));
    process.stderr.on("data", (chunk: Buffer) => request.onOutput(chunk.toString("utf8")));
    process.stdout.on("error", () => undefined);
    process.stderr.on("error", () => undefined);
    const exit = await process.exited;
    if (exit.timedOut)
      request.onOutput(`\nthe step ran out of time after ${options.timeoutMs ?? 30 * 60_000} ms\n`);
    const exitCode = exit.exitCode ?? 128;
    const layer = join(options.storageRoot, "layers", `run-${suffix}`);
    if (exitCode === 0) await driver.snapshot(handle, layer, request.signal);
    return { exitCode, layerDir: join(layer, "upper") };
  } finally {
    await driver.destroy(handle).catch(() => undefined);
    options.holds.release(id);
  }
}
