/**
 * Warm pools (`adopt`) and the create's connection handed to the first `connect`, against real
 * runsc sandboxes.
 */
import { existsSync } from "node:fs";
import { readText, runCommand, waitFor } from "@polydev/core/testing";
import { testImagesUnavailable } from "@polydev/images/testing";
import { describe, expect, it } from "vitest";
import { useGvisorFixture } from "./testing/driver-fixture.js";

const unavailable =
  testImagesUnavailable() ??
  (existsSync("/usr/bin/runsc") ? null : "runsc is not installed (apt-get install runsc)");

describe.skipIf(unavailable !== null)(
  `gvisor driver: warm pool claims and the first connection${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    const { driver, spec, image } = useGvisorFixture("warm");

    it("a claimed spare gives the claim's environment to every process started from then on, also after a restart", async () => {
      const pool = driver();
      const spare = await pool.create(spec("spare"));
      const before = await pool.connect(spare);
      expect((await runCommand(before, 'echo "[$GREETING]"')).stdout).toBe("[]\n");
      const home = (await runCommand(before, 'echo "$HOME"')).stdout;
      await before.close();

      const claim = spec("spare", { env: { GREETING: "hello", HOME: "/not-the-home" } });
      const handle = await pool.adopt(spare, claim);
      expect(handle.sandboxId).toBe(spare.sandboxId);
      const connection = await pool.connect(handle);
      try {
        // HOME stays the image user's, as on create; the request's own variables win.
        expect((await runCommand(connection, 'echo "$GREETING $HOME"')).stdout).toBe(`hello ${home}`);
        expect((await runCommand(connection, 'echo "$GREETING"', { env: { GREETING: "mine" } })).stdout).toBe(
          "mine\n",
        );
        await connection.startBackground({ argv: ["/bin/sh", "-c", 'echo "$GREETING" > greeting'] });
        await waitFor("the background process to write", async () =>
          (await readText(connection, "greeting").catch(() => "")) === "hello\n" ? true : undefined,
        );
      } finally {
        await connection.close();
      }

      // A restarted server: the environment is the sandbox's, kept on the host.
      const restarted = driver();
      const again = await restarted.connect(handle);
      try {
        expect((await runCommand(again, 'echo "$GREETING"')).stdout).toBe("hello\n");
      } finally {
        await again.close();
        await restarted.destroy(handle);
      }
    });

    it("refuses a claim for another sandbox, image or network, and a spare that is gone", async () => {
      const pool = driver();
      const spare = await pool.create(spec("picky"));
      try {
        await expect(pool.adopt(spare, spec("someone-else"))).rejects.toMatchObject({
          code: "invalid_request",
        });
        await expect(
          pool.adopt(spare, spec("picky", { image: { ...image(), digest: "sha256:other" } })),
        ).rejects.toMatchObject({ code: "invalid_request" });
        await expect(pool.adopt(spare, spec("picky", { network: "egress" }))).rejects.toMatchObject({
          code: "invalid_request",
        });
      } finally {
        await pool.destroy(spare);
      }
      await expect(pool.adopt(spare, spec("picky"))).rejects.toMatchObject({ code: "not_found" });
    });

    it("the first connection after create is the hello's; each connection stays independent", async () => {
      const owner = driver();
      const handle = await owner.create(spec("handover"));
      try {
        const first = await owner.connect(handle);
        const second = await owner.connect(handle);
        expect(second).not.toBe(first);
        await first.close();
        await first.closed;
        expect((await runCommand(second, "echo alive")).stdout).toBe("alive\n");
        await second.close();
        const third = await owner.connect(handle);
        expect((await runCommand(third, "echo again")).stdout).toBe("again\n");
        await third.close();
      } finally {
        await owner.destroy(handle);
      }
    });
  },
);
