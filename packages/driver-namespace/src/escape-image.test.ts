/**
 * The escape-probe suite again, on image sandboxes: root inside its own user namespace, the
 * default image's tools (sudo, compilers), setuid binaries, an overlay on a pool disk. Whatever
 * root can do there must still reach nothing outside.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runEscapeProbes } from "@polydev/core/testing";
import { BASE_IMAGE_ENV, StoragePool } from "@polydev/images";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { describe, it } from "vitest";
import { NamespaceDriver } from "./namespace-driver.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";

const unavailable = testImagesUnavailable();

if (unavailable !== null) {
  describe("escape probes: namespace, image sandboxes", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const [rootfs, toolbox] = await Promise.all([testBaseRootfs(), testToolbox()]);
  runEscapeProbes(
    "namespace, image sandboxes",
    async () => {
      const rootDir = await mkdtemp(join(tmpdir(), "polydev-ns-escape-image-"));
      const storageDir = await mkdtemp(join(tmpdir(), "polydev-ns-escape-pool-"));
      const pool = new StoragePool({
        mountPoint: join(storageDir, "pool"),
        imageFile: join(storageDir, "pool.xfs"),
        sizeBytes: 20 * 2 ** 30,
      });
      await pool.open();
      const cgroupName = privateCgroupName();
      const execSocketRoot = `/run/polydev-escape-image-${process.pid}`;
      const driver = new NamespaceDriver({
        rootDir,
        cgroupName,
        hostUidBase: privateUidBase(),
        hostUidCount: 10_000,
        execSocketRoot,
        storage: pool,
        toolboxDir: toolbox,
      });
      return {
        driver,
        hostSecretPaths: [rootDir, storageDir],
        hostStateDirs: [rootDir],
        cleanup: async () => {
          for (const sandbox of await driver.list())
            await driver.destroy(sandbox.handle).catch(() => undefined);
          await pool.close();
          await rm(rootDir, { recursive: true, force: true });
          // EBUSY while a sandbox starting elsewhere briefly holds a copy of the pool's mount.
          await rm(storageDir, { recursive: true, force: true, maxRetries: 50, retryDelay: 100 });
          await rm(execSocketRoot, { recursive: true, force: true });
          await removeCgroupParent(cgroupName);
        },
      };
    },
    {
      image: {
        name: "polydev/base",
        digest: "sha256:test",
        layers: [rootfs],
        env: { ...BASE_IMAGE_ENV },
        user: "user",
      },
    },
  );
}
