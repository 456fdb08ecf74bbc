/**
 * Several drivers in one server, chosen per sandbox: a real server running the namespace driver
 * with images (durable, fork, snapshot) beside a second, real namespace driver registered as
 * "plain" that was given no storage pool (host views only). Each sandbox's row keeps its driver,
 * every operation reaches the driver that made it (across a restart too), and asking a driver for
 * what it lacks is a 4xx that names the driver.
 */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { NamespaceDriver } from "@polydev/driver-namespace";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.js";
import { startServer } from "./server.js";
import type { TestServer } from "./testing/harness.js";
import {
  ApiClient,
  createUser,
  IMAGE_BUILD_TIMEOUT_MS,
  startTestServer,
  waitForImage,
} from "./testing/harness.js";

const missing = testImagesUnavailable() ?? (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs");

interface Health {
  driver: string;
  drivers: { name: string; features: string[]; default: boolean }[];
}
interface SandboxBody {
  id: string;
  driver: string;
  image: string | null;
  state: string;
}
interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

describe.skipIf(missing !== null)(
  `drivers chosen per sandbox${missing ? ` (skipped: ${missing})` : ""}`,
  () => {
    let t: TestServer;
    let api: ApiClient;
    beforeAll(async () => {
      await Promise.all([testBaseRootfs(), testToolbox()]);
      t = await startTestServer(
        { drivers: ["plain"], images: { enabled: true } },
        {
          // The factory ignores the storage pool it is offered: a driver without images.
          drivers: { plain: ({ rootDir, log }) => new NamespaceDriver({ name: "plain", rootDir, log }) },
        },
      );
      await waitForImage(t.api, "polydev/base");
      api = await createUser(t.api, "drivers-user");
    }, IMAGE_BUILD_TIMEOUT_MS);
    afterAll(async () => {
      await t?.close();
    });

    it("lists every driver with its own features, the default first", async () => {
      const health = await t.api.call<Health>("GET", "/healthz");
      expect(health.status).toBe(200);
      expect(health.body.driver).toBe("namespace");
      expect(health.body.drivers.map((d) => [d.name, d.default])).toEqual([
        ["namespace", true],
        ["plain", false],
      ]);
      const features = Object.fromEntries(health.body.drivers.map((d) => [d.name, d.features]));
      expect(features.namespace).toEqual(expect.arrayContaining(["images", "durable", "fork"]));
      expect(features.plain).not.toContain("images");
      expect(features.plain).not.toContain("durable");
    });

    it("creates on the driver a sandbox names, keeps it in the row, and reaches that driver for every operation, across a restart", async () => {
      const plain = await api.call<SandboxBody>("POST", "/v1/sandboxes", { driver: "plain" });
      expect(plain.status, JSON.stringify(plain.body)).toBe(201);
      expect(plain.body).toMatchObject({ driver: "plain", image: null, state: "running" });
      const usual = await api.call<SandboxBody>("POST", "/v1/sandboxes", {});
      expect(usual.status, JSON.stringify(usual.body)).toBe(201);
      expect(usual.body.driver).toBe("namespace");
      expect(usual.body.image).not.toBeNull();
      // Each driver keeps its sandboxes in its own directory, and lists only those.
      expect(await readdir(join(t.dataDir, "sandboxes-plain"))).toContain(plain.body.id);
      expect(await readdir(join(t.dataDir, "sandboxes"))).not.toContain(plain.body.id);
      const plainOnly = await t.server.driver.driver("plain").list();
      expect(plainOnly.map((o) => o.sandboxId)).toEqual([plain.body.id]);

      // No root in a host view, root in an image sandbox: each command ran where its row says.
      const whoPlain = await api.exec(plain.body.id, "id -u");
      expect(whoPlain.body.stdout.trim()).not.toBe("0");
      const whoUsual = await api.exec(usual.body.id, "id -u", { user: "root" });
      expect(whoUsual.body.stdout.trim()).toBe("0");

      // A restart reconciles each row with the driver that made it: both are still running and
      // answer (a row asked of the wrong driver would be failed as vanished).
      await t.restart();
      api = new ApiClient(t.url, api.key);
      for (const id of [plain.body.id, usual.body.id]) {
        expect((await t.server.store.sandboxes.get(id))?.state).toBe("running");
      }
      expect((await api.exec(plain.body.id, "echo again")).body.stdout).toBe("again\n");
      expect((await api.exec(usual.body.id, "echo again")).body.stdout).toBe("again\n");
    });

    it("refuses a driver the server does not run, and a name that is no driver's, with 400", async () => {
      const unknown = await api.call<ErrorBody>("POST", "/v1/sandboxes", { driver: "gvisor" });
      expect(unknown.status).toBe(400);
      expect(unknown.body.error.code).toBe("invalid_request");
      expect(unknown.body.error.message).toContain("namespace, plain");
      const bad = await api.call<ErrorBody>("POST", "/v1/sandboxes", { driver: "../etc" });
      expect(bad.status).toBe(400);
    });

    it("answers 422 naming the driver for what that driver lacks: images, stop, fork", async () => {
      const image = await api.call<ErrorBody>("POST", "/v1/sandboxes", {
        driver: "plain",
        image: "polydev/base",
      });
      expect(image.status).toBe(422);
      expect(image.body.error).toMatchObject({ code: "feature_unavailable", details: { driver: "plain" } });
      const plain = await api.call<SandboxBody>("POST", "/v1/sandboxes", { driver: "plain" });
      expect(plain.status).toBe(201);
      for (const [method, path, body] of [
        ["POST", `/v1/sandboxes/${plain.body.id}/stop`, undefined],
        ["POST", `/v1/sandboxes/${plain.body.id}/fork`, { count: 1 }],
      ] as const) {
        const refused = await api.call<ErrorBody>(method, path, body);
        expect(refused.status, path).toBe(422);
        expect(refused.body.error.details?.driver, path).toBe("plain");
      }
      // The default driver has them.
      const usual = await api.call<SandboxBody>("POST", "/v1/sandboxes", {});
      const stopped = await api.call<SandboxBody>("POST", `/v1/sandboxes/${usual.body.id}/stop`);
      expect(stopped.status).toBe(200);
      expect(stopped.body.state).toBe("stopped");
      for (const id of [plain.body.id, usual.body.id]) {
        expect((await api.call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(200);
      }
      expect(await readdir(join(t.dataDir, "sandboxes-plain"))).not.toContain(plain.body.id);
    });
  },
);

describe("a driver the configuration names but the build lacks", () => {
  it("keeps the server from starting, naming the drivers it has", async () => {
    // Refused before the data directory is touched: this one does not exist and is never made.
    const config = parseConfig({ dataDir: "/nonexistent-polydev", drivers: ["gvisor"], logLevel: "silent" });
    await expect(startServer(config, { drivers: {}, processSafetyNet: false })).rejects.toThrow(
      /unknown driver "namespace", "gvisor"/,
    );
    expect(existsSync("/nonexistent-polydev")).toBe(false);
  });

  it("keeps the server from starting on a driver setting the driver does not have, naming the variable", async () => {
    const config = parseConfig({
      dataDir: "/nonexistent-polydev",
      driverSettings: { plain: { speed: "fast" } },
      logLevel: "silent",
    });
    const drivers = {
      namespace: () => new NamespaceDriver({ rootDir: "/nonexistent-polydev/x" }),
      plain: () => new NamespaceDriver({ rootDir: "/nonexistent-polydev/y" }),
    };
    await expect(startServer(config, { drivers, processSafetyNet: false })).rejects.toThrow(
      /the plain driver takes no settings \(got POLYDEV_DRIVER_PLAIN_SPEED\)/,
    );
    expect(existsSync("/nonexistent-polydev")).toBe(false);
  });
});
