/**
 * Network "egress" on real microVMs (QEMU under TCG): the outside (a test host on a network the
 * test makes) is reachable, the host's loopback, its own addresses and link-local metadata are
 * not, the network survives a hibernate, a "none" sandbox has no NIC at all, and destroy (also
 * in the middle of a create) leaves no slirp4netns, namespace or directory behind. What must stay
 * unreachable is also covered by the escape probes (escape.test.ts). Few VMs: TCG is slow.
 */
import { existsSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { AgentConnection, SandboxSpec } from "@polydev/core";
import type { TestNetwork } from "@polydev/core/testing";
import {
  runCommand,
  startProbeServer,
  startTestNetwork,
  testNetworkUnavailable,
  waitFor,
} from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDriver } from "./testing/test-driver.js";
import { microvmUnavailable, testDriver, testImage } from "./testing/test-driver.js";

const unavailable =
  microvmUnavailable() ??
  testNetworkUnavailable() ??
  (existsSync("/usr/bin/slirp4netns") ? null : "slirp4netns is not installed (apt-get install slirp4netns)");

/** Prints "<target> connected" or the error's name, for each `address:port` (3 s each at most). */
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

/** Processes whose command line names `text` (slirp4netns names its router namespace's file). */
async function processesNaming(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir("/proc")) {
    if (!/^[0-9]+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(text)) found.push(cmdline.replaceAll("\0", " "));
  }
  return found;
}

async function expectNothingLeft(dir: string): Promise<void> {
  expect(await processesNaming(dir)).toEqual([]);
  expect(existsSync(dir)).toBe(false);
  expect(await readFile("/proc/self/mountinfo", "utf8")).not.toContain(dir);
}

if (unavailable !== null) {
  describe("microvm network egress", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const image = await testImage();

  describe("microvm network egress", () => {
    let setup: TestDriver;
    let network: TestNetwork;
    const spec = (label: string, mode: "egress" | "none" = "egress"): SandboxSpec => ({
      id: `egress-${label}-${process.pid}`,
      limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
      network: mode,
      env: {},
      image,
    });
    const connectFrom = async (connection: AgentConnection, targets: string[]): Promise<string> =>
      (await runCommand(connection, `python3 -c '${CONNECT}' ${targets.join(" ")}`)).stdout;

    beforeAll(async () => {
      setup = await testDriver("egress");
      expect((await setup.driver.probe()).features).toContain("egress");
      network = await startTestNetwork({ zone: {} });
    });

    afterAll(async () => {
      await setup?.cleanup();
      await network?.close();
    }, 180_000);

    it("reaches the outside, not the host's own services or metadata, and keeps its network across hibernate", async () => {
      const loopbackService = await startProbeServer("127.0.0.1");
      const hostService = await startProbeServer("0.0.0.0");
      const handle = await setup.driver.create(spec("outside"));
      const dir = join(setup.rootDir, "sandboxes", handle.sandboxId);
      try {
        const hostAddresses = Object.values(networkInterfaces())
          .flat()
          .filter((address) => address?.family === "IPv4" && !address.internal)
          .map((address) => `${address?.address}:${hostService.port}`);
        const outside = `${network.serverAddress}:${network.httpPort}`;
        const connection = await setup.driver.connect(handle);
        try {
          const seen = await connectFrom(connection, [
            outside,
            ...hostAddresses,
            `10.0.2.2:${loopbackService.port}`,
            `10.0.2.2:${hostService.port}`,
            "169.254.169.254:80",
            "10.0.3.1:22",
          ]);
          expect(seen).toContain(`${outside} connected`);
          expect(seen.split("\n").filter((line) => line.includes(" connected"))).toEqual([
            `${outside} connected`,
          ]);
          expect(loopbackService.connections()).toBe(0);
          expect(hostService.connections()).toBe(0);
          expect((await runCommand(connection, "cat /etc/resolv.conf")).stdout).toBe("nameserver 10.0.2.3\n");
          // IPv4 only: the NIC has no IPv6 address.
          expect(
            (await runCommand(connection, "cat /proc/net/if_inet6 2>/dev/null; echo end")).stdout,
          ).not.toMatch(/eth0/);
        } finally {
          await connection.close();
        }

        // QEMU: the VM's uid, no supplementary groups, in the sandbox's namespace (not the host's).
        const meta = JSON.parse(await readFile(join(dir, "meta.json"), "utf8")) as {
          pid: number;
          uid: number;
        };
        const status = await readFile(`/proc/${meta.pid}/status`, "utf8");
        expect(status).toMatch(
          new RegExp(`^Uid:\\s+${meta.uid}\\s+${meta.uid}\\s+${meta.uid}\\s+${meta.uid}$`, "m"),
        );
        expect(status).toMatch(/^Groups:\s*$/m);
        expect((await stat(`/proc/${meta.pid}/ns/net`)).ino).toBe(
          (await stat(join(dir, "netns-sandbox"))).ino,
        );
        expect((await stat(`/proc/${meta.pid}/ns/net`)).ino).not.toBe((await stat("/proc/self/ns/net")).ino);
        // slirp4netns runs in the VM's host cgroup: what the guest makes it buffer is the sandbox's.
        const slirpPid = (await readFile(join(dir, "slirp.pid"), "utf8")).trim();
        expect(await readFile(`/proc/${slirpPid}/cgroup`, "utf8")).toContain(handle.sandboxId);

        await setup.driver.hibernate(handle);
        // A slirp4netns that died meanwhile (a host reboot takes the namespaces too) is replaced.
        process.kill(Number(slirpPid), "SIGKILL");
        await waitFor("the old slirp4netns to go", async () =>
          existsSync(`/proc/${slirpPid}/cmdline`) ? undefined : true,
        );
        await setup.driver.resume(handle);
        expect((await readFile(join(dir, "slirp.pid"), "utf8")).trim()).not.toBe(slirpPid);
        const resumed = await setup.driver.connect(handle);
        try {
          expect(await connectFrom(resumed, [outside])).toContain(`${outside} connected`);
        } finally {
          await resumed.close();
        }
      } finally {
        await setup.driver.destroy(handle);
        await loopbackService.close();
        await hostService.close();
      }
      await expectNothingLeft(dir);
    }, 600_000);

    it('gives a "none" sandbox no NIC and no route', async () => {
      const handle = await setup.driver.create(spec("none", "none"));
      try {
        const connection = await setup.driver.connect(handle);
        try {
          const seen = await runCommand(
            connection,
            "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; echo --; tail -n +2 /proc/net/route",
          );
          expect(seen.stdout).toBe("lo\n--\n");
        } finally {
          await connection.close();
        }
      } finally {
        await setup.driver.destroy(handle);
      }
    }, 600_000);

    it("refuses an allow-list, saying why", async () => {
      await expect(setup.driver.create({ ...spec("allowlist"), network: "allowlist" })).rejects.toMatchObject(
        {
          code: "feature_unavailable",
          message: expect.stringContaining("allow-list"),
        },
      );
      expect(existsSync(join(setup.rootDir, "sandboxes", spec("allowlist").id))).toBe(false);
    }, 600_000);

    it("leaves no namespace or slirp4netns behind when destroyed in the middle of its create", async () => {
      const abort = new AbortController();
      const creating = setup.driver.create(spec("midway"), abort.signal);
      creating.catch(() => undefined);
      const dir = join(setup.rootDir, "sandboxes", spec("midway").id);
      // The moment its network exists (slirp4netns started), before the VM answers.
      await waitFor(
        "the sandbox's slirp4netns",
        async () =>
          (await processesNaming(join(dir, "netns-router"))).some((cmdline) =>
            cmdline.includes("slirp4netns"),
          )
            ? true
            : undefined,
        120_000,
        5,
      );
      abort.abort();
      await setup.driver.destroy({ sandboxId: spec("midway").id, driver: "microvm", data: {} });
      await expect(creating).rejects.toBeDefined();
      await setup.driver.destroy({ sandboxId: spec("midway").id, driver: "microvm", data: {} });
      await expectNothingLeft(dir);
    }, 600_000);
  });
}
