/**
 * A warm pool of gvisor sandboxes on a real server whose default driver is gvisor: a spare is
 * started ahead of time and a matching create claims it (the driver's `adopt`), its commands
 * then see the create's environment and run as the image's user. A server has an image store
 * (and so pools) only when its default driver can snapshot a sandbox's disk.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxHandle } from "@polydev/core";
import { GvisorDriver } from "@polydev/driver-gvisor";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { IMAGE_BUILD_TIMEOUT_MS, startTestServer, waitForImage } from "./testing/harness.js";

/** Why a gvisor-default server has no image store here: its driver cannot snapshot. */
async function snapshotMissing(): Promise<string | null> {
  const rootDir = await mkdtemp(join(tmpdir(), "polydev-gvisor-features-"));
  try {
    const info = await new GvisorDriver({ rootDir, toolboxDir: await testToolbox() }).probe();
    return info.features.includes("snapshot")
      ? null
      : "this gvisor driver offers no snapshot, so a server whose default driver it is has no image store and no warm pools";
  } finally {
    await rm(rootDir, { recursive: true, force: true });
  }
}

const missing =
  testImagesUnavailable() ??
  (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs") ??
  (existsSync("/usr/bin/runsc") ? null : "runsc is not installed (apt-get install runsc)") ??
  (await snapshotMissing());

describe.skipIf(missing !== null)(
  `a warm pool of gvisor sandboxes${missing ? ` (skipped: ${missing})` : ""}`,
  () => {
    let t: TestServer;
    beforeAll(async () => {
      await Promise.all([testBaseRootfs(), testToolbox()]);
      t = await startTestServer(
        { driver: "gvisor", images: { enabled: true, warmPools: { "polydev/base": 1 } } },
        {
          drivers: {
            gvisor: ({ rootDir, toolbox }) => {
              if (toolbox === undefined) throw new Error("images are on, so the server offers a toolbox");
              return new GvisorDriver({ rootDir, toolboxDir: toolbox });
            },
          },
        },
      );
      await waitForImage(t.api, "polydev/base");
    }, IMAGE_BUILD_TIMEOUT_MS);
    afterAll(async () => {
      await t?.close();
    });

    /** Whether a spare's agent answers: runsc says "running" well before the agent (and so the pool's create) is done. */
    async function answers(handle: SandboxHandle): Promise<boolean> {
      try {
        const connection = await t.server.driver.connect(handle);
        await connection.ping();
        await connection.close();
        return true;
      } catch {
        return false;
      }
    }

    /** Driver sandboxes without a row (the pool's spares), once one is up. */
    async function readySpares(): Promise<string[]> {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const rows = new Set(
          (await t.server.store.sandboxes.listByStates(["creating", "running", "stopped", "hibernated"])).map(
            (row) => row.id,
          ),
        );
        const spares = (await t.server.driver.list()).filter((observed) => !rows.has(observed.sandboxId));
        const alive = await Promise.all(spares.map((spare) => answers(spare.handle)));
        if (spares.length > 0 && alive.every(Boolean)) return spares.map((spare) => spare.sandboxId);
        if (Date.now() > deadline) throw new Error("the gvisor pool never held a spare");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }

    it("hands a matching create the gvisor spare, with the create's environment", async () => {
      const spares = await readySpares();
      const id = await t.api.createSandbox({ env: { CLAIMED: "yes" } });
      expect(spares).toContain(id);
      const result = await t.api.exec(id, "echo $CLAIMED; id -un");
      expect(result.body.stdout).toBe("yes\nuser\n");
      await t.api.call("DELETE", `/v1/sandboxes/${id}`);
    });
  },
);
