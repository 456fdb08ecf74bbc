/**
 * The gvisor driver beside the namespace one in a real server: a create picks it by name, its
 * commands run on gVisor's kernel (not the host's), hibernate keeps its processes across a
 * checkpoint, fork and network "egress" work, and what it lacks (a durable disk, an allow-list)
 * is a 422 naming it. The driver's own contract and escape suites live in its package.
 */
import { existsSync, readFileSync } from "node:fs";
import { GvisorDriver } from "@polydev/driver-gvisor";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, IMAGE_BUILD_TIMEOUT_MS, startTestServer, waitForImage } from "./testing/harness.js";

const missing =
  testImagesUnavailable() ??
  (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs") ??
  (existsSync("/usr/bin/runsc") ? null : "runsc is not installed (apt-get install runsc)");

interface Health {
  drivers: { name: string; features: string[]; default: boolean }[];
}
interface SandboxBody {
  id: string;
  driver: string;
  image: string | null;
  state: string;
}
interface ErrorBody {
  error: { code: string; details?: Record<string, unknown> };
}

describe.skipIf(missing !== null)(
  `the gvisor driver in a server${missing ? ` (skipped: ${missing})` : ""}`,
  () => {
    let t: TestServer;
    let api: ApiClient;
    beforeAll(async () => {
      await Promise.all([testBaseRootfs(), testToolbox()]);
      t = await startTestServer(
        { drivers: ["gvisor"], images: { enabled: true } },
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
      api = await createUser(t.api, "gvisor-user");
    }, IMAGE_BUILD_TIMEOUT_MS);
    afterAll(async () => {
      await t?.close();
    });

    it("creates a sandbox on gVisor's kernel when asked by name, and says what that driver lacks", async () => {
      const health = await t.api.call<Health>("GET", "/healthz");
      const gvisor = health.body.drivers.find((d) => d.name === "gvisor");
      expect(gvisor).toMatchObject({ default: false });
      expect(gvisor?.features).toContain("images");
      expect(gvisor?.features).toEqual(expect.arrayContaining(["fork", "hibernate-memory", "egress"]));
      expect(gvisor?.features).not.toContain("durable");

      const created = await api.call<SandboxBody>("POST", "/v1/sandboxes", { driver: "gvisor" });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ driver: "gvisor", state: "running" });
      expect(created.body.image).not.toBeNull();
      const id = created.body.id;
      // gVisor's Sentry answers /proc/version with its own kernel, never the host's.
      const version = await api.exec(id, "cat /proc/version");
      expect(version.body.exitCode).toBe(0);
      expect(version.body.stdout).not.toBe(readFileSync("/proc/version", "utf8"));
      const who = await api.exec(id, "id -un");
      expect(who.body.stdout).toBe("user\n");

      const stop = await api.call<ErrorBody>("POST", `/v1/sandboxes/${id}/stop`);
      expect(stop.status).toBe(422);
      expect(stop.body.error.details?.driver).toBe("gvisor");
      const allowlist = await api.call<ErrorBody>("POST", "/v1/sandboxes", {
        driver: "gvisor",
        network: { mode: "allowlist", allow: ["example.com"], deny: [], presets: [] },
      });
      expect(allowlist.status).toBe(422);

      // Its disk outlives the checkpoint, and a fork starts with a copy of it (processes and memory
      // across a checkpoint are the driver package's checkpoint.test.ts).
      expect((await api.exec(id, "echo kept > ~/note")).body.exitCode).toBe(0);
      const hibernated = await api.call<SandboxBody>("POST", `/v1/sandboxes/${id}/hibernate`);
      expect(hibernated.body.state).toBe("hibernated");
      // An exec resumes it.
      expect((await api.exec(id, "echo back; cat ~/note")).body.stdout).toBe("back\nkept\n");

      const fork = await api.call<{ sandboxes: SandboxBody[] }>("POST", `/v1/sandboxes/${id}/fork`, {
        count: 1,
      });
      expect(fork.status, JSON.stringify(fork.body)).toBe(201);
      const forkId = fork.body.sandboxes[0]?.id ?? "";
      expect((await api.exec(forkId, "cat ~/note")).body.stdout).toBe("kept\n");
      expect((await api.call("DELETE", `/v1/sandboxes/${forkId}`)).status).toBe(200);
      expect((await api.call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(200);

      const egress = await api.call<SandboxBody>("POST", "/v1/sandboxes", {
        driver: "gvisor",
        network: "egress",
      });
      expect(egress.status, JSON.stringify(egress.body)).toBe(201);
      expect((await api.exec(egress.body.id, "cat /etc/resolv.conf")).body.stdout).toBe(
        "nameserver 10.0.2.3\n",
      );
      // This runsc cannot fork an egress sandbox: a 4xx naming why, and no new sandbox is left.
      const before = await api.call<{ items: SandboxBody[] }>("GET", "/v1/sandboxes");
      const refused = await api.call<{ error: { code: string; message: string } }>(
        "POST",
        `/v1/sandboxes/${egress.body.id}/fork`,
        { count: 1 },
      );
      expect(refused.status, JSON.stringify(refused.body)).toBe(422);
      expect(refused.body.error.code).toBe("feature_unavailable");
      expect(refused.body.error.message).toMatch(/egress/);
      const after = await api.call<{ items: SandboxBody[] }>("GET", "/v1/sandboxes");
      const live = (items: SandboxBody[]) =>
        items
          .filter((s) => s.state !== "destroyed")
          .map((s) => s.id)
          .sort();
      expect(live(after.body.items)).toEqual(live(before.body.items));
      expect(after.body.items.filter((s) => s.state === "failed")).toEqual([]);
      expect((await api.call("DELETE", `/v1/sandboxes/${egress.body.id}`)).status).toBe(200);
    });
  },
);
