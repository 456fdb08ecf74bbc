/**
 * A sandbox's logs carry its guest kernel's console (guest-console.ts): what killed a process
 * inside the VM is readable from the host, on real QEMU (TCG).
 */
import { runCommand } from "@polydev/core/testing";
import { describe, expect, it } from "vitest";
import { microvmUnavailable, testDriver, testImage } from "./testing/test-driver.js";

const unavailable = microvmUnavailable();
const TIMEOUT = 300_000;

if (unavailable !== null) {
  describe("microvm console in logs", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  describe("microvm console in logs", () => {
    it(
      "shows the guest kernel's out-of-memory kill of a sandbox process",
      async () => {
        const image = await testImage();
        const { driver, cleanup } = await testDriver("console");
        try {
          const handle = await driver.create({
            id: "console-oom",
            image,
            limits: { cpu: 1, memoryMb: 64, diskMb: 64, pidsMax: 128 },
            network: "none",
            env: {},
          });
          expect(await driver.logs(handle)).not.toMatch(/Killed process/);
          const connection = await driver.connect(handle);
          try {
            const hog = await runCommand(
              connection,
              "awk 'BEGIN { s = \"x\"; for (i = 0; i < 40; i++) s = s s; print length(s) }'",
              { timeoutMs: 60_000 },
            );
            expect(hog.exitCode !== 0 || hog.signal !== null).toBe(true);
          } finally {
            connection.close();
          }
          // The kernel prints the kill as it happens; the tail is read as the console writes.
          let logs = "";
          for (let attempt = 0; attempt < 100 && !/Killed process \d+ \(awk\)/.test(logs); attempt += 1) {
            logs = await driver.logs(handle);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          expect(logs).toContain("guest console:");
          expect(logs).toMatch(/Killed process \d+ \(awk\)/);
        } finally {
          await cleanup();
        }
      },
      TIMEOUT,
    );
  });
}
