/**
 * A restarted server (a new driver over the same directory) reaches its running VMs again, but
 * only through sockets that are the VM's own (vm-socket.ts): a QEMU taken over by its guest
 * owns its run directory, and a link it planted there must not take the server (root) to
 * another of the host's sockets. Real QEMU (TCG).
 */
import { rm, symlink } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxSpec } from "@polydev/core";
import { runCommand } from "@polydev/core/testing";
import { testToolbox } from "@polydev/images/testing";
import { describe, expect, it } from "vitest";
import { MicrovmDriver } from "./microvm-driver.js";
import { microvmUnavailable, testDriver, testImage } from "./testing/test-driver.js";

const unavailable = microvmUnavailable();

/**
 * What the first server's end does to its VMs: its connections to their agents close (QEMU
 * serves one client per socket). Reached through the driver's private state, as a test only.
 */
async function endServer(driver: MicrovmDriver, sandboxIds: string[]): Promise<void> {
  const inside = driver as unknown as {
    links: Map<string, Promise<{ close(): void }>>;
    handedOver: { drop(sandboxId: string): void };
  };
  for (const id of sandboxIds) {
    inside.handedOver.drop(id);
    (await inside.links.get(id))?.close();
    inside.links.delete(id);
  }
}
const TIMEOUT = 300_000;

if (unavailable !== null) {
  describe("microvm reattach after a server restart", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  describe("microvm reattach after a server restart", () => {
    it(
      "reaches a running VM again through its own sockets, and refuses a planted link",
      async () => {
        const image = await testImage();
        const { driver, rootDir, cleanup } = await testDriver("reattach");
        const restarted = async (): Promise<MicrovmDriver> =>
          new MicrovmDriver({ rootDir, toolboxDir: await testToolbox() });
        const spec = (id: string): SandboxSpec => ({
          id,
          image,
          limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
          network: "none",
          env: {},
        });
        // A host service the planted link points at: it must never see the server connect.
        const hostSocket = join(tmpdir(), `polydev-reattach-host-${process.pid}.sock`);
        let hostConnections = 0;
        const host = createServer((socket) => {
          hostConnections += 1;
          socket.destroy();
        });
        await new Promise<void>((resolve) => host.listen(hostSocket, resolve));
        try {
          const kept = await driver.create(spec("reattach-kept"));
          const planted = await driver.create(spec("reattach-planted"));
          await endServer(driver, [kept.sandboxId, planted.sandboxId]);

          const second = await restarted();
          const connection = await second.connect(kept);
          try {
            expect((await runCommand(connection, "echo again")).stdout).toBe("again\n");
          } finally {
            connection.close();
          }

          // What a compromised QEMU could do in its own run directory.
          const agentSocket = join(rootDir, "vms", "reattach-planted", "agent.sock");
          await rm(agentSocket);
          await symlink(hostSocket, agentSocket);
          const third = await restarted();
          await expect(third.connect(planted)).rejects.toMatchObject({ code: "sandbox_not_running" });
          expect(hostConnections).toBe(0);
        } finally {
          host.close();
          await rm(hostSocket, { force: true });
          await cleanup();
        }
      },
      TIMEOUT,
    );
  });
}
