import { runDriverContract, withDefaultImage } from "@polydev/core/testing";
import { describe, it } from "vitest";

import { microvmUnavailable, testDriver, testImage } from "./testing/test-driver.js";

const unavailable = microvmUnavailable();

if (unavailable !== null) {
  describe("SandboxDriver contract: microvm", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const image = await testImage();
  runDriverContract(
    "microvm",
    async () => {
      const { driver, rootDir, cleanup } = await testDriver("contract");
      return { driver: withDefaultImage(driver, image), hostSecretPaths: [rootDir], cleanup };
    },
    // Restores under TCG on a shared 2-core machine: a case creates up to three VMs.
    { timeoutMs: 180_000 },
  );
}
