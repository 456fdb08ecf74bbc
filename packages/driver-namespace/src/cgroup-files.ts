/** Small readers and waits shared by the cgroup v1 and v2 implementations. */
import { readFile, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** CFS period; a sandbox with `cpu: 0.5` gets 50 ms of CPU time in every 100 ms. */
export const CPU_PERIOD_US = 100_000;
export const MiB = 1024 * 1024;

export async function readNumber(file: string): Promise<number> {
  const text = (await readFile(file, "utf8").catch(() => "0")).trim();
  return text === "max" ? Number.POSITIVE_INFINITY : Number(text);
}

export async function readPids(file: string): Promise<number[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line.length > 0)
    .map(Number);
}

/** `key value` lines (memory.events, cpu.stat, memory.oom_control) as a lookup. */
export async function readKeyed(file: string): Promise<Map<string, number>> {
  const text = await readFile(file, "utf8").catch(() => "");
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [key, value] = line.split(" ");
    if (key && value !== undefined) values.set(key, Number(value));
  }
  return values;
}

export function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/**
 * Waits for a kernel-side transition (a freeze settling, dying tasks leaving a cgroup). There
 * is no event to wait on for these in cgroup v1, so this polls with a short, growing interval.
 */
export async function until(what: string, done: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; !(await done()); attempt++) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(Math.min(1 + attempt * 2, 25));
  }
}

/**
 * rmdir on a cgroup fails with EBUSY while the kernel is still tearing down its last task, or
 * while a process joined after the last kill (a launcher racing the destroy): kill again, retry.
 */
export async function removeCgroupDir(dir: string): Promise<void> {
  await until(`cgroup ${dir} to be removable`, async () => {
    try {
      await rmdir(dir);
      return true;
    } catch (error) {
      if (error instanceof Error && "code" in error) {
        if (error.code === "ENOENT") return true;
        if (error.code === "EBUSY") {
          for (const pid of await readPids(join(dir, "cgroup.procs"))) killQuietly(pid);
          return false;
        }
      }
      throw error;
    }
  });
}
