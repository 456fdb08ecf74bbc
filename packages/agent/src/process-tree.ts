/** Host-side process helpers: finding the command under its wrappers, signalling groups. */
import { readFile } from "node:fs/promises";

async function childrenOf(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8");
    return text
      .trim()
      .split(/\s+/)
      .filter((s) => s.length > 0)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * The pid `depth` generations below `pid` along the first child (wrappers such as nsenter fork
 * exactly one child), or undefined if the chain has already ended.
 */
export async function descendant(pid: number, depth: number): Promise<number | undefined> {
  let current = pid;
  for (let i = 0; i < depth; i++) {
    const [child] = await childrenOf(current);
    if (child === undefined) return undefined;
    current = child;
  }
  return current;
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone: nothing to signal.
  }
}

export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Start time in clock ticks since boot: with the pid, it names a process uniquely. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}
