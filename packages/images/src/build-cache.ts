import { type FileHandle, mkdir, open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";
import { removeBuildDirectory, runBuildProcess } from "./build-process.js";

/** Builds `targetDir` (absent when called) or rejects; on an abort of `signal` it stops and cleans up. */
export type CachedBuild = (targetDir: string, signal: AbortSignal) => Promise<void>;

interface SharedBuild {
  promise: Promise<string>;
  controller: AbortController;
  waiters: number;
}

/** One build per target directory in this process; other processes are kept out by a lock file. */
const inFlight = new Map<string, SharedBuild>();

/** The name prefix of an unfinished build's directory beside its target. */
export function partialPrefix(entryName: string): string {
  return `${entryName}.partial-`;
}

/**
 * Returns `<cacheDir>/<entryName>`, building it with `build` first when it is absent. Concurrent
 * callers in this process share one build; another process building the same entry holds
 * `<entryName>.lock` (an flock, so a crashed holder releases it) and this one waits, then finds the
 * entry built. Leftover `<entryName>.partial-*` directories of crashed builds are removed under the
 * lock. A caller's abort rejects that caller at once; the build itself stops only when every
 * caller waiting on it has aborted. `cacheDir` is created root-only (0700).
 */
export function ensureCachedBuild(
  cacheDir: string,
  entryName: string,
  build: CachedBuild,
  signal?: AbortSignal,
): Promise<string> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  const target = join(cacheDir, entryName);
  let shared = inFlight.get(target);
  if (shared === undefined) {
    const controller = new AbortController();
    const promise = buildUnderLock(cacheDir, entryName, build, controller.signal).finally(() => {
      if (inFlight.get(target) === shared) inFlight.delete(target);
    });
    // Every caller may have gone by the time it settles; the rejection is theirs, not unhandled.
    promise.catch(() => {});
    shared = { promise, controller, waiters: 0 };
    inFlight.set(target, shared);
  }
  const current = shared;
  current.waiters += 1;
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      current.waiters -= 1;
      if (current.waiters === 0) {
        // A caller arriving after this starts a fresh build; it waits on the lock until this
        // one has cleaned up (a second open of the lock file conflicts with the first).
        if (inFlight.get(target) === current) inFlight.delete(target);
        current.controller.abort(signal?.reason);
      }
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    current.promise.then(
      (dir) => {
        signal?.removeEventListener("abort", onAbort);
        if (settled) return;
        settled = true;
        resolve(dir);
      },
      (error: unknown) => {
        signal?.removeEventListener("abort", onAbort);
        if (settled) return;
        settled = true;
        reject(error);
      },
    );
  });
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return false;
    throw error;
  }
}

async function buildUnderLock(
  cacheDir: string,
  entryName: string,
  build: CachedBuild,
  signal: AbortSignal,
): Promise<string> {
  const target = join(cacheDir, entryName);
  if (await isDirectory(target)) return target;
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const lock = await lockFile(join(cacheDir, `${entryName}.lock`), signal);
  try {
    // Another process may have finished it while this one waited for the lock.
    if (await isDirectory(target)) return target;
    const prefix = partialPrefix(entryName);
    for (const name of await readdir(cacheDir)) {
      if (name.startsWith(prefix)) await removeBuildDirectory(join(cacheDir, name));
    }
    signal.throwIfAborted();
    await build(target, signal);
    if (!(await isDirectory(target))) {
      throw new PolydevError("internal", `the build of ${entryName} finished without producing it`);
    }
    return target;
  } finally {
    await lock.close();
  }
}

/**
 * Takes an exclusive flock on `path`: flock(1) locks the open file description it inherits from
 * this process, so the lock is ours until `close()`, and the kernel drops it if this process dies.
 * Node has no flock of its own.
 */
async function lockFile(path: string, signal: AbortSignal): Promise<FileHandle> {
  const handle = await open(path, "a", 0o600);
  try {
    await runBuildProcess("/usr/bin/flock", ["--exclusive", "3"], {
      what: `locking ${path}`,
      signal,
      stdio3: handle.fd,
    });
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}
