/**
 * Network "egress" on real gvisor sandboxes: the outside (a test host on a network the test
 * makes) is reachable, the host's own services are not, a frozen sandbox keeps its network, and
 * destroy leaves no slirp4netns and no namespace behind. What must stay unreachable is also
 * covered by the escape probes (escape.test.ts).
 */
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { AgentConnection, SandboxHandle, SandboxSpec } from "@polydev/core";
import type { TestNetwork } from "@polydev/core/testing";
import {
  runCommand,
  startProbeServer,
  startTestNetwork,
  testNetworkUnavailable,
} from "@polydev/core/testing";
import { BASE_IMAGE_ENV } from "@polydev/images";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GvisorDriver } from "./gvisor-driver.js";
import { removeCgroupParent } from "./testing/cgroup-parent.js";

const unavailable =
  testImagesUnavailable() ??
  (existsSync("/usr/bin/runsc") ? null : "runsc is not installed (apt-get install runsc)") ??
  testNetworkUnavailable() ??
  (existsSync("/usr/bin/slirp4netns") ? null : "slirp4netns is not installed (apt-get install slirp4netns)");

/** Prints "connected" or the error, for each `address:port` (3 s each at most). */
const CONNECT = `
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), 3).close()
        print(target, "connected")
    except Exception as e:
        print(target, type(e).__name__)
`;

async function slirpProcessesFor(dir: string): Promise<number> {
  let count = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^[0-9]+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes("slirp4netns") && cmdline.includes(dir)) count += 1;
  }
  return count;
}

if (unavailable !== null) {
  describe("gvisor network egress", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const [rootfs, toolbox] = await Promise.all([testBaseRootfs(), testToolbox()]);

  describe("gvisor network egress", () => {
    let rootDir = "";
    let driver: GvisorDriver;
    let network: TestNetwork;
    const cgroupParent = `polydev-gvisor-egress-${process.pid}`;
    const spec = (label: string): SandboxSpec => ({
      id: `egress-${label}-${process.pid}`,
      limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
      network: "egress",
      env: {},
      image: { name: "polydev/base", digest: "sha256:test", layers: [rootfs], env: { ...BASE_IMAGE_ENV } },
    });

    const connectFrom = async (connection: AgentConnection, targets: string[]): Promise<string> =>
      (await runCommand(connection, `python3 -c '${CONNECT}' ${targets.join(" ")}`)).stdout;

    beforeAll(async () => {
      rootDir = await mkdtemp("/tmp/polydev-gvisor-egress-");
      driver = new GvisorDriver({ rootDir, toolboxDir: toolbox, cgroupParent });
      expect((await driver.probe()).features).toContain("egress");
      network = await startTestNetwork({ zone: {} });
    });

    afterAll(async () => {
      for (const sandbox of (await driver?.list()) ?? [])
        await driver.destroy(sandbox.handle).catch(() => undefined);
      await network?.close();
      await rm(rootDir, { recursive: true, force: true });
      await removeCgroupParent(cgroupParent);
    });

    it("reaches the outside, not the host's own services, and keeps its network across hibernate", async () => {
      const hostService = await startProbeServer("0.0.0.0");
      const handle: SandboxHandle = await driver.create(spec("outside"));
      const dir = join(rootDir, "sandboxes", handle.sandboxId);
      try {
        const hostAddresses = Object.values(networkInterfaces())
          .flat()
          .filter((address) => address?.family === "IPv4" && !address.internal)
          .map((address) => `${address?.address}:${hostService.port}`);
        const connection = await driver.connect(handle);
        try {
          const seen = await connectFrom(connection, [
            `${network.serverAddress}:${network.httpPort}`,
            ...hostAddresses,
            `10.0.2.2:${hostService.port}`,
            "10.0.3.1:22",
          ]);
          expect(seen).toContain(`${network.serverAddress}:${network.httpPort} connected`);
          expect(seen.split("\n").filter((line) => line.includes(" connected"))).toHaveLength(1);
          expect(hostService.connections()).toBe(0);
          expect((await runCommand(connection, "cat /etc/resolv.conf")).stdout).toBe("nameserver 10.0.2.3\n");
        } finally {
          await connection.close();
        }
        expect(await slirpProcessesFor(dir)).toBe(1);
        // What the sandbox makes slirp4netns hold counts against the sandbox's own cgroups.
        const slirpPid = (await readFile(join(dir, "slirp.pid"), "utf8")).trim();
        const slirpCgroups = await readFile(`/proc/${slirpPid}/cgroup`, "utf8");
        expect(slirpCgroups).toMatch(
          new RegExp(
            `memory:/${cgroupParent}/${handle.sandboxId}\n|^0::/${cgroupParent}/${handle.sandboxId}\n`,
            "m",
          ),
        );

        await driver.hibernate(handle);
        await driver.resume(handle);
        const resumed = await driver.connect(handle);
        try {
          expect(await connectFrom(resumed, [`${network.serverAddress}:${network.httpPort}`])).toContain(
            " connected",
          );
        } finally {
          await resumed.close();
        }
      } finally {
        await driver.destroy(handle);
        await hostService.close();
      }
      expect(await slirpProcessesFor(dir)).toBe(0);
      expect(existsSync(dir)).toBe(false);
      const mounts = await readFile("/proc/self/mountinfo", "utf8");
      expect(mounts).not.toContain(dir);
    });

    it("does not fork an egress sandbox, and says why", async () => {
      const handle = await driver.create(spec("nofork"));
      try {
        await expect(driver.fork(handle, [spec("nofork-child")])).rejects.toMatchObject({
          code: "feature_unavailable",
        });
        expect(existsSync(join(rootDir, "sandboxes", spec("nofork-child").id))).toBe(false);
      } finally {
        await driver.destroy(handle);
      }
    });
  });
}
