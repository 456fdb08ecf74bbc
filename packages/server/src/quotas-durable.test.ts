/**
 * Quotas with durable sandboxes (images on): starting a stopped sandbox, explicitly or by an exec,
 * takes CPU and memory again, so the plan is asked first; a fork asks for all its copies at once.
 */
import { existsSync } from "node:fs";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, IMAGE_BUILD_TIMEOUT_MS, startTestServer, waitForImage } from "./testing/harness.js";

const imagesMissing = testImagesUnavailable() ?? (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs");

interface ErrorBody {
  error: { code: string; details?: Record<string, unknown> };
}

let t: TestServer;
let user: ApiClient;

describe.skipIf(imagesMissing !== null)(
  `quotas on durable sandboxes (skipped without the test images: ${imagesMissing ?? "present"})`,
  () => {
    beforeAll(async () => {
      await Promise.all([testBaseRootfs(), testToolbox()]);
      t = await startTestServer({ images: { enabled: true } });
      await waitForImage(t.api, "polydev/base");
      user = await createUser(t.api, "durable-quota");
      const userId = (await user.call<{ id: string }>("GET", "/v1/me")).body.id;
      await t.api.call("PUT", "/v1/admin/plans/one", { limits: { runningSandboxes: 1 } });
      await t.api.call("PUT", `/v1/admin/users/${userId}/plan`, { plan: "one" });
    }, IMAGE_BUILD_TIMEOUT_MS);
    afterAll(async () => {
      await t?.close();
    });

    it("lets a stopped sandbox start only while the plan has room, by hand or by an exec", async () => {
      const first = await user.createSandbox({ memoryMb: 256 });
      expect((await user.call("POST", `/v1/sandboxes/${first}/stop`)).status).toBe(200);
      // Stopped, it holds no running slot: a second one fits.
      const second = await user.createSandbox({ memoryMb: 256 });
      const start = await user.call<ErrorBody>("POST", `/v1/sandboxes/${first}/start`);
      expect(start.status).toBe(429);
      expect(start.body.error).toMatchObject({
        code: "quota_exceeded",
        details: { limit: "runningSandboxes" },
      });
      const implied = await user.exec(first, "true");
      expect(implied.status).toBe(429);
      expect((await user.call<{ state: string }>("GET", `/v1/sandboxes/${first}`)).body.state).toBe(
        "stopped",
      );

      // A fork of the running one would be a second running sandbox.
      const fork = await user.call<ErrorBody>("POST", `/v1/sandboxes/${second}/fork`, { count: 1 });
      expect(fork.status).toBe(429);

      expect((await user.call("POST", `/v1/sandboxes/${second}/stop`)).status).toBe(200);
      expect((await user.call("POST", `/v1/sandboxes/${first}/start`)).status).toBe(200);
      expect((await user.exec(first, "echo back")).body.stdout).toBe("back\n");
    });
  },
);
