/**
 * The connection create opens alongside the activation (the guest serves it once the sandbox is
 * ready) is the first connect's; it behaves as any other and stays independent of the rest.
 */
import { runCommand } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDriver } from "./testing/test-driver.js";
import { microvmUnavailable, testDriver, testImage } from "./testing/test-driver.js";

const unavailable = microvmUnavailable();

describe.skipIf(unavailable !== null)("microvm: the first connection after create", () => {
  let setup: TestDriver;
  beforeAll(async () => {
    setup = await testDriver("first-connection");
  }, 300_000);
  afterAll(async () => {
    await setup?.cleanup();
  });

  it("runs commands in the activated sandbox; each connection stays independent", async () => {
    const { driver } = setup;
    const handle = await driver.create({
      id: "first-connection",
      limits: { cpu: 1, memoryMb: 256, diskMb: 256, pidsMax: 128 },
      network: "none",
      env: { GREETING: "hello" },
      image: await testImage(),
    });
    try {
      const first = await driver.connect(handle);
      const second = await driver.connect(handle);
      expect(second).not.toBe(first);
      // Served only after the activation: the sandbox's environment and user are in place.
      const inside = await runCommand(
        first,
        'echo "$GREETING $(id -u) $HOME"; test -d /opt/polydev && echo toolbox',
      );
      expect(inside.stdout).toBe("hello 0 /root\ntoolbox\n");
      await first.close();
      await first.closed;
      expect((await runCommand(second, "echo alive")).stdout).toBe("alive\n");
      await second.close();
      const third = await driver.connect(handle);
      expect((await runCommand(third, "echo again")).stdout).toBe("again\n");
      // node-pty is loaded at the first terminal (after the boot snapshot's warm-up, not at start).
      const terminal = await third.openPty({
        argv: ["/bin/sh", "-c", "echo terminal-ok"],
        cols: 80,
        rows: 24,
      });
      const chunks: Buffer[] = [];
      terminal.output.on("data", (chunk: Buffer) => chunks.push(chunk));
      expect((await terminal.exited).exitCode).toBe(0);
      expect(Buffer.concat(chunks).toString("utf8")).toContain("terminal-ok");
      await third.close();
    } finally {
      await driver.destroy(handle);
    }
  }, 300_000);
});
