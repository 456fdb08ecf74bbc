/** Host-side process helpers: finding the command under its wrappers, signalling groups. */
import { readdir, readFile } from "node:fs/promises";

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

/** Every descendant of `pid` (children first found, then theirs), for killing a whole tree. */
export async function descendants(pid: number): Promise<number[]> {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift();
    if (current === undefined) break;
    const tasks = await readdir(`/proc/${current}/task`).catch(() => [] as string[]);
    for (const task of tasks) {
      const text = await readFile(`/proc/${current}/task/${task}/children`, "utf8").catch(() => "");
      for (const child of text
        .split(/\s+/)
        .filter((s) => s.length > 0)
        .map(Number)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/**
 * SIGKILLs a process and everything it started, even in other process groups or sessions
 * (an agent's tool commands often are). Stopping the tree first keeps it from forking meanwhile.
 */
export async function killTree(pid: number): Promise<void> {
  const tree = [pid, ...(await descendants(pid))];
  for (const member of tree) signalPid(member, "SIGSTOP");
  const late = await descendants(pid);
  for (const member of new Set([...tree, ...late])) signalPid(member, "SIGKILL");
}
