/**
 * The escape-probe suite on gvisor sandboxes of the default image, as its own user with sudo
 * at hand: whatever root in the Sentry can do must still reach nothing outside.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runEscapeProbes } from "@polydev/core/testing";
import { BASE_IMAGE_ENV } from "@polydev/images";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { describe, it } from "vitest";
import { GvisorDriver } from "./gvisor-driver.js";

const unavailable =
  testImagesUnavailable() ??
  (existsSync("/usr/bin/runsc") ? null : "runsc is not installed (apt-get install runsc)");

if (unavailable !== null) {
  describe("escape probes: gvisor", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const [rootfs, toolbox] = await Promise.all([testBaseRootfs(), testToolbox()]);
  runEscapeProbes(
    "gvisor",
    async () => {
      const rootDir = await mkdtemp(join(tmpdir(), "polydev-gvisor-escape-"));
      const driver = new GvisorDriver({
        rootDir,
        toolboxDir: toolbox,
        cgroupParent: `polydev-gvisor-escape-${process.pid}`,
      });
      await driver.probe();
      return {
        driver,
        hostSecretPaths: [rootDir],
        hostStateDirs: [join(rootDir, "sandboxes"), join(rootDir, "runsc")],
        cleanup: async () => {
          for (const sandbox of await driver.list())
            await driver.destroy(sandbox.handle).catch(() => undefined);
          await rm(rootDir, { recursive: true, force: true });
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
