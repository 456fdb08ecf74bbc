import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runDriverContract, withDefaultImage } from "@polydev/core/testing";
import { BASE_IMAGE_ENV } from "@polydev/images";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { describe, it } from "vitest";
import { GvisorDriver } from "./gvisor-driver.js";
import { removeCgroupParent } from "./testing/cgroup-parent.js";

const unavailable =
  testImagesUnavailable() ??
  (existsSync("/usr/bin/runsc") ? null : "runsc is not installed (apt-get install runsc)");

if (unavailable !== null) {
  describe("SandboxDriver contract: gvisor", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const [rootfs, toolbox] = await Promise.all([testBaseRootfs(), testToolbox()]);
  runDriverContract(
    "gvisor",
    async () => {
      const rootDir = await mkdtemp(join(tmpdir(), "polydev-gvisor-contract-"));
      const cgroupParent = `polydev-gvisor-test-${process.pid}`;
      const driver = new GvisorDriver({
        rootDir,
        toolboxDir: toolbox,
        cgroupParent,
      });
      await driver.probe();
      return {
        driver: withDefaultImage(driver, {
          name: "polydev/base",
          digest: "sha256:test",
          layers: [rootfs],
          env: { ...BASE_IMAGE_ENV },
        }),
        hostSecretPaths: [rootDir],
        cleanup: async () => {
          for (const sandbox of await driver.list())
            await driver.destroy(sandbox.handle).catch(() => undefined);
          await rm(rootDir, { recursive: true, force: true });
          await removeCgroupParent(cgroupParent);
        },
      };
    },
    {
      skip: {
        "memory-limit":
          "Debian's runsc (20221219) has no OOM killer of its own: a guest past its memory limit gets the host cgroup's OOM kill, which ends the whole Sentry (only that sandbox)",
      },
    },
  );
}
