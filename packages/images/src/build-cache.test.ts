import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensureCachedBuild } from "./build-cache.js";

const hasFlock = existsSync("/usr/bin/flock");
const SKIP = hasFlock ? "" : " (skipped: /usr/bin/flock is absent)";

let work: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "polydev-build-cache-"));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A build that writes one file, counts its runs and can be held open until released. */
function countingBuild(): {
  runs: () => number;
  release: () => void;
  build: (target: string, signal: AbortSignal) => Promise<void>;
  aborted: () => boolean;
} {
  let runs = 0;
  let aborted = false;
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    runs: () => runs,
    release: () => release(),
    aborted: () => aborted,
    build: async (target, signal) => {
      runs += 1;
      if (signal.aborted) {
        aborted = true;
        throw signal.reason;
      }
      await new Promise<void>((resolve, reject) => {
        signal.addEventListener(
          "abort",
          () => {
            aborted = true;
            reject(signal.reason);
          },
          { once: true },
        );
        void gate.then(resolve);
      });
      await mkdir(target);
      await writeFile(join(target, "built"), "yes");
    },
  };
}

/** The command line of ensureCachedBuild's lock helper, as /proc shows it. */
const FLOCK_HELPER_CMDLINE = ["/usr/bin/flock", "--exclusive", "3", ""].join("\0");

/** Pids of flock(1) processes waiting with `lockPath` open as their fd 3. */
async function flockWaitersOn(lockPath: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8");
      if (cmdline === FLOCK_HELPER_CMDLINE && (await readlink(`/proc/${name}/fd/3`)) === lockPath) {
        found.push(Number(name));
      }
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

describe(`ensureCachedBuild${SKIP}`, () => {
  it.skipIf(!hasFlock)("builds once for concurrent callers and then reuses the entry", async () => {
    const counter = countingBuild();
    const first = ensureCachedBuild(join(work, "cache"), "thing-1", counter.build);
    const second = ensureCachedBuild(join(work, "cache"), "thing-1", counter.build);
    counter.release();
    const [a, b] = await Promise.all([first, second]);
    expect(a).toBe(join(work, "cache", "thing-1"));
    expect(b).toBe(a);
    expect(counter.runs()).toBe(1);
    expect(await ensureCachedBuild(join(work, "cache"), "thing-1", counter.build)).toBe(a);
    expect(counter.runs()).toBe(1);
    expect(await readFile(join(a, "built"), "utf8")).toBe("yes");
    expect((await stat(join(work, "cache"))).mode & 0o777).toBe(0o700);
  });

  it.skipIf(!hasFlock)("removes partial directories a crashed build left", async () => {
    const cache = join(work, "cache");
    await mkdir(join(cache, "thing-1.partial-abc123", "deep"), { recursive: true });
    await writeFile(join(cache, "thing-1.partial-abc123", "deep", "file"), "half");
    await mkdir(join(cache, "other-1.partial-abc123"), { recursive: true });
    const counter = countingBuild();
    counter.release();
    await ensureCachedBuild(cache, "thing-1", counter.build);
    expect((await readdir(cache)).sort()).toEqual(["other-1.partial-abc123", "thing-1", "thing-1.lock"]);
  });

  it.skipIf(!hasFlock)(
    "keeps building while one of two callers aborts, and stops when both have",
    async () => {
      const counter = countingBuild();
      const one = new AbortController();
      const two = new AbortController();
      const first = ensureCachedBuild(join(work, "cache"), "thing-1", counter.build, one.signal);
      const second = ensureCachedBuild(join(work, "cache"), "thing-1", counter.build, two.signal);
      one.abort(new Error("first caller left"));
      await expect(first).rejects.toThrow("first caller left");
      expect(counter.aborted()).toBe(false);
      two.abort(new Error("second caller left"));
      await expect(second).rejects.toThrow("second caller left");
      // The build saw the abort once it had started (it may still be waiting for the lock).
      for (let i = 0; i < 100 && counter.runs() === 1 && !counter.aborted(); i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(counter.runs() === 0 || counter.aborted()).toBe(true);
      counter.release();
      expect(existsSync(join(work, "cache", "thing-1"))).toBe(false);
    },
  );

  it.skipIf(!hasFlock)(
    "starts a fresh build for a caller who comes after every earlier caller aborted",
    async () => {
      const stopped = countingBuild();
      const controller = new AbortController();
      const first = ensureCachedBuild(join(work, "cache"), "thing-1", stopped.build, controller.signal);
      controller.abort(new Error("gone"));
      await expect(first).rejects.toThrow("gone");
      const fresh = countingBuild();
      fresh.release();
      expect(await ensureCachedBuild(join(work, "cache"), "thing-1", fresh.build)).toBe(
        join(work, "cache", "thing-1"),
      );
      expect(fresh.runs()).toBe(1);
      stopped.release();
    },
  );

  it.skipIf(!hasFlock)("waits for another process that holds the lock, then uses what it built", async () => {
    const cache = join(work, "cache");
    await mkdir(cache, { recursive: true });
    const lockPath = join(cache, "thing-1.lock");
    // Another process: takes the lock, says so, builds the entry when told, then exits.
    const other: ChildProcess = spawn(
      "/usr/bin/flock",
      [
        "--exclusive",
        lockPath,
        "/bin/sh",
        "-c",
        'echo locked; read line; mkdir "$0"',
        join(cache, "thing-1"),
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        other.stdout?.once("data", () => resolve());
        other.once("error", reject);
      });
      const counter = countingBuild();
      counter.release();
      const ensured = ensureCachedBuild(cache, "thing-1", counter.build);
      // This process is now queued on the lock: its flock(1) helper holds the lock file open.
      let waiters = await flockWaitersOn(lockPath);
      for (let i = 0; i < 200 && waiters.length === 0; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        waiters = await flockWaitersOn(lockPath);
      }
      expect(waiters).toHaveLength(1);
      expect(counter.runs()).toBe(0);
      other.stdin?.end("go\n");
      expect(await ensured).toBe(join(cache, "thing-1"));
      expect(counter.runs()).toBe(0);
    } finally {
      other.kill();
    }
  });
});
