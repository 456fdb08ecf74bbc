/**
 * What the shared contract does not ask: a second driver instance on the same root directory
 * (a restarted server) finds the sandbox, connects to its agent and sees what the first
 * connection left running; and what the driver refuses.
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
  `gvisor driver: durability and refusals${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    const { driver, spec } = useGvisorFixture("durable");

    it("a new driver instance on the same root connects again and finds background work still running", async () => {
      const first = driver();
      const handle = await first.create(spec("a"));
      const connection = await first.connect(handle);
      await connection.startBackground({
        argv: [
          "/bin/sh",
          "-c",
          "i=0; while :; do i=$((i+1)); echo $i > tick.tmp; mv tick.tmp tick; sleep 0.05; done",
        ],
      });
      await waitFor("the ticker to start", async () =>
        Number((await readText(connection, "tick").catch(() => "0")).trim()) > 1 ? true : undefined,
      );
      await connection.close();

      // As after a server restart: nothing of the first instance is used.
      const second = driver();
      const listed = await second.list();
      expect(listed.find((s) => s.sandboxId === handle.sandboxId)?.alive).toBe(true);
      const again = await second.connect(
        listed.find((s) => s.sandboxId === handle.sandboxId)?.handle ?? handle,
      );
      try {
        const before = Number((await readText(again, "tick")).trim());
        await waitFor("the ticker to move on", async () =>
          Number((await readText(again, "tick")).trim()) > before ? true : undefined,
        );
        expect((await again.listBackground()).length).toBe(1);
        expect((await runCommand(again, "echo still")).stdout).toBe("still\n");
      } finally {
        await again.close();
        await second.destroy(handle);
      }
      expect(await second.isAlive(handle)).toBe(false);
    });

    it("a new driver instance resumes a sandbox the first one hibernated, with its processes", async () => {
      const first = driver();
      const handle = await first.create(spec("hibernated"));
      try {
        const connection = await first.connect(handle);
        await connection.startBackground({
          argv: ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > tick; sleep 0.05; done"],
        });
        await waitFor("the ticker to start", async () =>
          Number((await readText(connection, "tick").catch(() => "0")).trim()) > 1 ? true : undefined,
        );
        await connection.close();
        await first.hibernate(handle);

        const second = driver();
        expect((await second.list()).find((s) => s.sandboxId === handle.sandboxId)?.alive).toBe(true);
        await second.resume(handle);
        const again = await second.connect(handle);
        try {
          const before = Number((await readText(again, "tick")).trim());
          await waitFor("the ticker to move on", async () =>
            Number((await readText(again, "tick")).trim()) > before ? true : undefined,
          );
        } finally {
          await again.close();
        }
      } finally {
        await driver().destroy(handle);
      }
    });

    it("refuses a sandbox without an image, and networks it does not offer", async () => {
      const refuser = driver();
      await expect(refuser.create({ ...spec("no-image"), image: undefined })).rejects.toMatchObject({
        code: "invalid_request",
      });
      await expect(refuser.create(spec("allowlist", { network: "allowlist" }))).rejects.toMatchObject({
        code: "feature_unavailable",
      });
      expect((await refuser.probe()).features).not.toContain("egress-allowlist");
      await expect(refuser.create(spec("../escape"))).rejects.toMatchObject({ code: "invalid_request" });
      expect((await refuser.list()).map((s) => s.sandboxId)).not.toContain(spec("no-image").id);
    });
  },
);
