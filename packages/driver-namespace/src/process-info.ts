import { readFileSync } from "node:fs";

/** include/linux/sched.h: the task is getting shut down. */
const PF_EXITING = 0x4;

// procfs reads are synchronous: a few microseconds each, where a thread-pool round trip costs
// far more on a busy host (they are on the path of every create and connect).

/**
 * Start time in clock ticks since boot: together with the pid it names one process, so a pid
 * the kernel has handed to someone else since (pid_max can be as low as 32768) is never
 * mistaken for the sandbox's. Zombies count as gone: they run nothing and hold no namespace;
 * so do processes on their way out.
 */
export async function startTimeOf(pid: number): Promise<number | undefined> {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may itself contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    // Exiting (PF_EXITING in the flags): a killed sandbox init lingers in this state until every
    // process of its pid namespace is gone, and must not count as a live sandbox meanwhile.
    if ((Number(fields[6]) & PF_EXITING) !== 0) return undefined;
    const startTime = Number(fields[19]);
    return Number.isFinite(startTime) ? startTime : undefined;
  } catch {
    return undefined;
  }
}

export async function isSameProcess(pid: number | null, startTime: number | null): Promise<boolean> {
  if (pid === null || startTime === null) return false;
  return (await startTimeOf(pid)) === startTime;
}

/** True once the process is gone and reaped (a zombie still counts as there). */
export async function isReaped(pid: number, startTime: number): Promise<boolean> {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]) !== startTime;
  } catch {
    return true;
  }
}

/** SIGKILLs a process only if it is still the one that was recorded. */
export async function killIfSame(pid: number | null, startTime: number | null): Promise<void> {
  if (pid === null || !(await isSameProcess(pid, startTime))) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // It exited between the check and the kill.
  }
}
