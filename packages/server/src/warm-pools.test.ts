/**
 * Warm pools over HTTP, on a real server with images and the real namespace driver: spares are
 * started ahead of time, a matching create claims one (its environment given at the claim), the
 * pool refills in the background and never holds more than its size, and a create the pool does
 * not match starts a sandbox of its own.
 */
import { existsSync } from "node:fs";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { IMAGE_BUILD_TIMEOUT_MS, startTestServer, waitForImage } from "./testing/harness.js";

const missing = testImagesUnavailable() ?? (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs");
const POOL_SIZE = 2;

describe.skipIf(missing !== null)(`warm pools${missing ? ` (skipped: ${missing})` : ""}`, () => {
  let t: TestServer;
  beforeAll(async () => {
    await Promise.all([testBaseRootfs(), testToolbox()]);
    t = await startTestServer({
      reconcileIntervalMs: 200,
      images: { enabled: true, warmPools: { "polydev/base": POOL_SIZE } },
    });
    await waitForImage(t.api, "polydev/base");
  }, IMAGE_BUILD_TIMEOUT_MS);
  afterAll(async () => {
    await t?.close();
  });

  /** Driver sandboxes without a row: the pool's spares. */
  async function spares(): Promise<string[]> {
    const rows = new Set(
      (await t.server.store.sandboxes.listByStates(["creating", "running", "stopped", "hibernated"])).map(
        (row) => row.id,
      ),
    );
    return (await t.server.driver.list()).map((observed) => observed.sandboxId).filter((id) => !rows.has(id));
  }

  async function poolFull(): Promise<string[]> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ready = await spares();
      expect(ready.length).toBeLessThanOrEqual(POOL_SIZE);
      // Ready means connectable: a spare half-way through its create is not counted yet.
      if (
        ready.length === POOL_SIZE &&
        (
          await Promise.all(
            ready.map((id) => t.server.driver.isAlive({ sandboxId: id, driver: "namespace", data: {} })),
          )
        ).every(Boolean)
      ) {
        return ready;
      }
      if (Date.now() > deadline) throw new Error(`the pool holds ${ready.length} of ${POOL_SIZE}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it("hands a matching create a spare with the create's environment, then refills to its size", async () => {
    const before = await poolFull();
    const id = await t.api.createSandbox({ env: { CLAIMED: "yes" } });
    expect(before).toContain(id);
    const result = await t.api.exec(id, "echo $CLAIMED; id -un");
    expect(result.body.stdout).toBe("yes\nuser\n");
    // Refilled, never past its size (poolFull checks every sample).
    const after = await poolFull();
    expect(after).not.toContain(id);
    await t.api.call("DELETE", `/v1/sandboxes/${id}`);
  });

  it("starts a sandbox of its own for a create the pool does not match", async () => {
    const before = await poolFull();
    const id = await t.api.createSandbox({ memoryMb: 256 });
    expect(before).not.toContain(id);
    expect(await spares()).toEqual(expect.arrayContaining(before));
    await t.api.call("DELETE", `/v1/sandboxes/${id}`);
  });
});
