import { existsSync } from "node:fs";
import { mkdtemp, rm, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runEscapeProbes } from "@polydev/core/testing";
import { NamespaceDriver } from "./namespace-driver.js";

/** Its own uid range and cgroup parent, so no parallel test's driver mistakes these sandboxes. */
const privateUidBase = (): number => 1_000_000 + Math.floor(Math.random() * 900) * 10_000;
const privateCgroupName = (): string =>
  `polydev-escape-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

async function removeCgroupParent(name: string): Promise<void> {
  const v2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
  const dirs = v2
    ? [join("/sys/fs/cgroup", name)]
    : ["memory", "pids", "cpu", "cpuacct", "freezer"].map((controller) =>
        join("/sys/fs/cgroup", controller, name),
      );
  for (const dir of dirs) await rmdir(dir).catch(() => undefined);
}

runEscapeProbes("namespace", async () => {
  const rootDir = await mkdtemp(join(tmpdir(), "polydev-ns-escape-"));
  const cgroupName = privateCgroupName();
  // A private copy of the exec server too: the default (/run/polydev-exec/polydev-init) is one
  // host-wide file that any other Polydev on this host replaces with its own build, and the
  // probes must judge this tree's init.
  const execSocketRoot = `/run/polydev-escape-${process.pid}`;
  const driver = new NamespaceDriver({
    rootDir,
    cgroupName,
    hostUidBase: privateUidBase(),
    hostUidCount: 10_000,
    execSocketRoot,
  });
  return {
    driver,
    // The driver's root holds every sandbox's metadata, env.json and console log.
    hostSecretPaths: [rootDir],
    hostStateDirs: [rootDir],
    cleanup: async () => {
      for (const sandbox of await driver.list()) await driver.destroy(sandbox.handle).catch(() => undefined);
      await rm(rootDir, { recursive: true, force: true });
      await rm(execSocketRoot, { recursive: true, force: true });
      await removeCgroupParent(cgroupName);
    },
  };
});
