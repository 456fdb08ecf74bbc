/**
 * One boot snapshot serves every disk size: the guest saw the template's (largest) changes disk
 * at boot, and each sandbox's own smaller disk must still mount at its own size.
 */
import { runCommand } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDriver } from "./testing/test-driver.js";
import { microvmUnavailable, testDriver, testImage } from "./testing/test-driver.js";

const unavailable = microvmUnavailable();

describe.skipIf(unavailable !== null)(
  `microvm disk sizes${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let context: TestDriver | undefined;
    beforeAll(async () => {
      context = await testDriver("disks");
    });
    afterAll(async () => {
      await context?.cleanup();
    });

    it("a sandbox of another disk size gets a file system of that size", async () => {
      const driver = context?.driver;
      if (driver === undefined) throw new Error("no driver");
      const handle = await driver.create({
        id: `disk-${process.pid}`,
        limits: { cpu: 1, memoryMb: 256, diskMb: 200, pidsMax: 128 },
        network: "none",
        env: {},
        image: await testImage(),
      });
      try {
        const connection = await driver.connect(handle);
        try {
          const result = await runCommand(connection, "df -k / | tail -1 | awk '{print $2}'");
          expect(result.exitCode).toBe(0);
          const kib = Number(result.stdout.trim());
          expect(kib).toBeGreaterThan(150 * 1024);
          expect(kib).toBeLessThanOrEqual(200 * 1024);
        } finally {
          await connection.close();
        }
      } finally {
        await driver.destroy(handle);
      }
    }, 300_000);
  },
);
