/**
 * The host's side of hibernate with memory and of fork: `runsc checkpoint` writes the Sentry
 * (every guest process and its memory, /tmp included) to an image in the sandbox's directory and
 * `runsc restore` starts a container from it. This runsc refuses to save a bound host socket, so
 * the agent is told to let go of its socket first (SIGUSR1, guest-agent.ts) and to listen again
 * after the restore (SIGUSR2).
 */
import { existsSync, watch } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";
import { QUIESCE_SIGNAL, QUIESCED_FILE, RELISTEN_SIGNAL } from "./agent-signals.js";
import { AGENT_SOCKET_NAME } from "./guest-layer.js";
import type { RunscCallOptions, RunscOptions } from "./runsc.js";
import { runscOk } from "./runsc.js";

/** Through the sandbox's init, which passes it on to the agent (guest-init.c). */
export function signalAgent(
  runsc: RunscOptions,
  containerId: string,
  signal: typeof QUIESCE_SIGNAL | typeof RELISTEN_SIGNAL,
  call: RunscCallOptions,
): Promise<string> {
  return runscOk(runsc, ["kill", containerId, signal], call);
}

/**
 * Resolves once `dir/name` exists (a watch, no polling loop); `timeout` after `timeoutMs`, and
 * `sandbox_failed` as soon as `alive` says the sandbox is gone.
 */
export function waitForFile(
  dir: string,
  name: string,
  what: string,
  timeoutMs: number,
  alive: () => Promise<boolean>,
  signal?: AbortSignal,
): Promise<void> {
  const path = join(dir, name);
  const deadline = AbortSignal.timeout(timeoutMs);
  const waitSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
  return new Promise<void>((resolve, reject) => {
    const watcher = watch(dir);
    const done = (error?: Error): void => {
      watcher.close();
      clearInterval(liveness);
      waitSignal.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve();
    };
    const onAbort = (): void =>
      done(
        signal?.aborted
          ? new PolydevError("request_timeout", `stopped waiting for ${what}: the request was cancelled`)
          : new PolydevError("timeout", `${what} did not happen within ${timeoutMs} ms`),
      );
    const liveness = setInterval(() => {
      alive().then(
        (isAlive) => {
          if (!isAlive) done(new PolydevError("sandbox_failed", `the sandbox stopped before ${what}`));
        },
        () => undefined,
      );
    }, 1000);
    watcher.on("change", () => {
      if (existsSync(path)) done();
    });
    watcher.on("error", (error) => done(error));
    waitSignal.addEventListener("abort", onAbort, { once: true });
    if (existsSync(path)) done();
  });
}

export interface CheckpointInput {
  runsc: RunscOptions;
  containerId: string;
  socketDir: string;
  imageDir: string;
  call: RunscCallOptions;
  timeoutMs: number;
  alive: () => Promise<boolean>;
  signal?: AbortSignal | undefined;
}

/**
 * Quiesces the agent and checkpoints the container into `imageDir`; the container is stopped
 * afterwards (this runsc's checkpoint always ends it). On failure the agent listens again and
 * the partial image is removed.
 */
export async function checkpointContainer(input: CheckpointInput): Promise<void> {
  await rm(join(input.socketDir, QUIESCED_FILE), { force: true });
  // The Sentry cannot remove its host socket's file (it cannot even lstat it): the host does,
  // once the agent has closed it, so that the next listen finds the path free.
  const releaseSocketFile = (): Promise<void> =>
    rm(join(input.socketDir, AGENT_SOCKET_NAME), { force: true });
  await signalAgent(input.runsc, input.containerId, QUIESCE_SIGNAL, input.call);
  try {
    await waitForFile(
      input.socketDir,
      QUIESCED_FILE,
      "the agent letting go of its socket",
      input.timeoutMs,
      input.alive,
      input.signal,
    );
    await releaseSocketFile();
    await rm(input.imageDir, { recursive: true, force: true });
    await runscOk(input.runsc, ["checkpoint", `--image-path=${input.imageDir}`, input.containerId], {
      ...input.call,
      ...(input.signal ? { signal: input.signal } : {}),
    });
  } catch (error) {
    await rm(input.imageDir, { recursive: true, force: true });
    // Still running (the checkpoint refused): give the host its way in back.
    await releaseSocketFile();
    await signalAgent(input.runsc, input.containerId, RELISTEN_SIGNAL, input.call).catch(() => undefined);
    throw error;
  }
}
