/**
 * What a test needs to run its own NamespaceDriver beside others on one host (other test files,
 * a server test, another engineer's run): a cgroup parent and a uid range of its own, so that
 * "no process of this uid is left" and a reconciler's idea of its orphans cannot be confused.
 */
import { existsSync } from "node:fs";
import { readdir, readFile, rmdir } from "node:fs/promises";
import { join } from "node:path";

/** A uid range nobody else uses (the default range starts at 200001). */
export const privateUidBase = (): number => 1_000_000 + Math.floor(Math.random() * 900) * 10_000;

export const privateCgroupName = (): string =>
  `polydev-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

export async function removeCgroupParent(name: string): Promise<void> {
  const v2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
  const dirs = v2
    ? [join("/sys/fs/cgroup", name)]
    : ["memory", "pids", "cpu", "cpuacct", "freezer"].map((controller) =>
        join("/sys/fs/cgroup", controller, name),
      );
  for (const dir of dirs) await rmdir(dir).catch(() => undefined);
}

/** Host pids whose real uid is `uid`, read from /proc. */
export async function hostPidsOfUid(uid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, "utf8").catch(() => "");
    const realUid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    if (realUid !== undefined && Number(realUid) === uid) pids.push(Number(entry));
  }
  return pids;
}
