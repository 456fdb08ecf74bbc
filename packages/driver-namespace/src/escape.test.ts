import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runEscapeProbes } from "@polydev/core/testing";
import { NamespaceDriver } from "./namespace-driver.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";

runEscapeProbes("namespace", async () => {
  const rootDir = await mkdtemp(join(tmpdir(), "polydev-ns-escape-"));
  const cgroupName = privateCgroupName();
  // Its own exec directories too, removed afterwards with everything in them.
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
