import { readFile } from "node:fs/promises";

/** Start time in clock ticks since boot: together with the pid it names one process. */
export async function startTimeOf(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return undefined;
  }
}

export async function isSameProcess(pid: number, startTime: number): Promise<boolean> {
  return (await startTimeOf(pid)) === startTime;
}
