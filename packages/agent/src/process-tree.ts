/**
 * Host-side process helpers. Launchers may put wrappers (e.g. nsenter) between the process the
 * agent spawns and the command; these find the command below them and signal it or its group.
 */
import { readdir, readFile } from "node:fs/promises";
import { constants } from "node:os";

async function childrenOf(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8");
    return text
      .split(" ")
      .filter((field) => field.length > 0)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * The pid `depth` generations below `pid` along the first child (wrappers such as nsenter fork
 * exactly one child), or undefined when that chain has already ended.
 */
export async function descendant(pid: number, depth: number): Promise<number | undefined> {
  let current = pid;
  for (let generation = 0; generation < depth; generation++) {
    const [child] = await childrenOf(current);
    if (child === undefined) return undefined;
    current = child;
  }
  return current;
}

/** The pids from `pid` down to (not including) `depth` generations below it: the wrappers. */
export async function wrapperChain(pid: number, depth: number): Promise<number[]> {
  const chain = [pid];
  let current = pid;
  for (let generation = 1; generation < depth; generation++) {
    const [child] = await childrenOf(current);
    if (child === undefined) break;
    chain.push(child);
    current = child;
  }
  return chain;
}

/** Every live pid in process group `pgid` (a scan of /proc; not atomic, as kill(-pgid) is). */
export async function groupMembers(pgid: number): Promise<number[]> {
  const names = await readdir("/proc").catch(() => [] as string[]);
  const members = await Promise.all(
    names
      .filter((name) => /^\d+$/.test(name))
      .map(async (name) => {
        const fields = await statFields(Number(name));
        return fields !== undefined && fields[0] !== "Z" && fields[2] === String(pgid) ? Number(name) : 0;
      }),
  );
  return members.filter((pid) => pid > 0);
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  return signalPid(-pgid, signal);
}

export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** `/proc/<pid>/stat` after the command name: [state, ppid, pgrp, …]. */
async function statFields(pid: number): Promise<string[] | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/**
 * Start time (clock ticks since boot) of a live process: with the pid, it names one process for
 * good. Undefined when the pid is gone or a zombie, which an init that reaps slowly leaves
 * around for seconds and which kill(pid, 0) would still call running.
 */
export async function liveStartTime(pid: number): Promise<number | undefined> {
  const fields = await statFields(pid);
  if (fields === undefined || fields[0] === "Z" || fields[0] === "X") return undefined;
  const startTime = fields[19];
  return startTime === undefined ? undefined : Number(startTime);
}

export async function isAlive(pid: number): Promise<boolean> {
  return (await liveStartTime(pid)) !== undefined;
}

const SIGNAL_NAMES = new Map<number, string>();
// The first name wins for aliases (SIGABRT before SIGIOT, SIGIO before SIGPOLL).
for (const [name, number] of Object.entries(constants.signals)) {
  if (!SIGNAL_NAMES.has(number)) SIGNAL_NAMES.set(number, name);
}

export function signalName(signal: number | null | undefined): string | null {
  if (signal === null || signal === undefined || signal === 0) return null;
  return SIGNAL_NAMES.get(signal) ?? `signal ${signal}`;
}

/** Every descendant of `pid`, found through /proc's children lists. */
async function descendants(pid: number): Promise<number[]> {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift();
    if (current === undefined) break;
    const tasks = await readdir(`/proc/${current}/task`).catch(() => [] as string[]);
    for (const task of tasks) {
      const text = await readFile(`/proc/${current}/task/${task}/children`, "utf8").catch(() => "");
      for (const child of text
        .split(" ")
        .filter((field) => field.length > 0)
        .map(Number)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/**
 * SIGKILLs a process and everything it started, also in other process groups or sessions (an
 * agent's tool commands often are). Stopping the tree first keeps it from forking meanwhile.
 */
export async function killTree(pid: number): Promise<void> {
  const tree = [pid, ...(await descendants(pid))];
  for (const member of tree) signalPid(member, "SIGSTOP");
  for (const member of new Set([...tree, ...(await descendants(pid))])) signalPid(member, "SIGKILL");
}
