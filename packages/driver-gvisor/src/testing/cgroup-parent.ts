/**
 * runsc removes each sandbox's cgroup but not the parent the driver names: tests and benches
 * that use a private parent remove it (from every v1 hierarchy, or the v2 tree) when done.
 */
import { readdir, rmdir } from "node:fs/promises";
import { join } from "node:path";

export async function removeCgroupParent(name: string): Promise<void> {
  const roots = [
    "/sys/fs/cgroup",
    ...(await readdir("/sys/fs/cgroup").catch(() => [] as string[])).map((d) => join("/sys/fs/cgroup", d)),
  ];
  for (const root of roots) await rmdir(join(root, name)).catch(() => undefined);
}
