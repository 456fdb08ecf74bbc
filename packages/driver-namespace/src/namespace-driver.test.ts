import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxHandle, SandboxSpec } from "@polydev/core";
import { runCommand, runDriverContract, startProbeServer, waitFor } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceDriver } from "./namespace-driver.js";
import {
  hostPidsOfUid,
  privateCgroupName,
  privateUidBase,
  removeCgroupParent,
} from "./testing/private-host.js";

runDriverContract("namespace", async () => {
  const rootDir = await mkdtemp(join(tmpdir(), "polydev-ns-contract-"));
  const cgroupName = privateCgroupName();
  return {
    driver: new NamespaceDriver({ rootDir, cgroupName, hostUidBase: privateUidBase(), hostUidCount: 10_000 }),
    hostSecretPaths: [rootDir],
    cleanup: async () => {
      await rm(rootDir, { recursive: true, force: true });
      await removeCgroupParent(cgroupName);
    },
  };
});

/**
 * A "remote host" for egress tests: a network namespace of the test's own, joined to the host
 * by a veth pair, with a TCP server that answers "polydev-probe" and counts who got through.
 * Never an outside address.
 */
async function startNetnsHost(): Promise<{
  address: string;
  port: number;
  connections(): Promise<number>;
  close(): Promise<void>;
}> {
  const tag = Math.random().toString(16).slice(2, 8);
  const name = `pdnat${tag}`;
  const octet = 1 + Math.floor(Math.random() * 250);
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  ip("netns", "add", name);
  ip("link", "add", `pdh${tag}`, "type", "veth", "peer", "name", `pdn${tag}`);
  ip("link", "set", `pdn${tag}`, "netns", name);
  ip("addr", "add", `10.231.${octet}.1/30`, "dev", `pdh${tag}`);
  ip("link", "set", `pdh${tag}`, "up");
  ip("netns", "exec", name, "ip", "addr", "add", `10.231.${octet}.2/30`, "dev", `pdn${tag}`);
  ip("netns", "exec", name, "ip", "link", "set", `pdn${tag}`, "up");
  ip("netns", "exec", name, "ip", "link", "set", "lo", "up");
  const counter = join(tmpdir(), `${name}.count`);
  const server = spawn(
    "ip",
    [
      "netns",
      "exec",
      name,
      "python3",
      "-c",
      [
        "import socket, sys",
        "s = socket.socket(); s.bind(('0.0.0.0', 8765)); s.listen(); print('ready', flush=True)",
        "n = 0",
        "while True:",
        "    c, _ = s.accept(); n += 1",
        `    open('${counter}', 'w').write(str(n))`,
        "    c.sendall(b'polydev-probe\\n'); c.close()",
      ].join("\n"),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve) => server.stdout?.once("data", () => resolve()));
  return {
    address: `10.231.${octet}.2`,
    port: 8765,
    connections: async () => Number((await readFile(counter, "utf8").catch(() => "0")) || 0),
    close: async () => {
      server.kill("SIGKILL");
      ip("netns", "del", name);
      await rm(counter, { force: true });
    },
  };
}

interface Meta {
  hostUid: number;
  initPid: number;
  slirpPid: number | null;
  cgroupPaths: string[];
  execSocket: string;
}

function metaOf(handle: SandboxHandle): Meta {
  const { hostUid, initPid, slirpPid, cgroupPaths, execSocket } = handle.data;
  if (
    typeof hostUid !== "number" ||
    typeof initPid !== "number" ||
    !Array.isArray(cgroupPaths) ||
    typeof execSocket !== "string"
  ) {
    throw new Error(`unexpected handle data ${JSON.stringify(handle.data)}`);
  }
  return {
    hostUid,
    initPid,
    slirpPid: typeof slirpPid === "number" ? slirpPid : null,
    cgroupPaths: cgroupPaths.map(String),
    execSocket,
  };
}

/** Pids with their command lines, so a failure says what was left behind. */
async function describePids(pids: number[]): Promise<string[]> {
  return Promise.all(
    pids.map(
      async (pid) =>
        `${pid} ${(await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replaceAll("\0", " ")}`,
    ),
  );
}

const processExists = (pid: number): boolean => existsSync(`/proc/${pid}`);

describe("namespace driver", () => {
  let rootDir: string;
  let driver: NamespaceDriver;
  let hostUidBase: number;
  const cgroupName = privateCgroupName();
  const spec = (id: string, extra: Partial<SandboxSpec> = {}): SandboxSpec => ({
    id: `ns-${id}-${Math.random().toString(36).slice(2, 8)}`,
    limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
    network: "none",
    env: {},
    ...extra,
  });

  beforeAll(async () => {
    rootDir = await mkdtemp(join(tmpdir(), "polydev-ns-"));
    hostUidBase = privateUidBase();
    driver = new NamespaceDriver({ rootDir, cgroupName, hostUidBase, hostUidCount: 10_000 });
  });
  afterAll(async () => {
    for (const sandbox of await driver.list()) await driver.destroy(sandbox.handle);
    await rm(rootDir, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  it("probes the host and names its features", async () => {
    const info = await driver.probe();
    expect(info.name).toBe("namespace");
    expect(info.features).toContain("hibernate");
    expect(info.features.some((feature) => feature.startsWith("cgroup-v"))).toBe(true);
  });

  it("runs commands as uid 1000 'user' inside and as its own unprivileged uid on the host", async () => {
    const handle = await driver.create(spec("identity"));
    try {
      const { hostUid } = metaOf(handle);
      expect(hostUid).toBeGreaterThan(hostUidBase);
      const connection = await driver.connect(handle);
      try {
        const result = await runCommand(
          connection,
          "id; hostname; echo $HOME; cat /etc/shadow 2>/dev/null | wc -c; cat /proc/self/uid_map",
        );
        const lines = result.stdout.trim().split("\n");
        expect(lines[0]).toBe("uid=1000(user) gid=1000(user) groups=1000(user)");
        expect(lines[1]).toBe("sandbox");
        expect(lines[2]).toBe("/home/user");
        expect(lines[3]).toBe("0");
        // uid 1000 is the only uid there is: nothing else (host root least of all) is mapped.
        expect(lines[4]?.trim().split(/\s+/)).toEqual(["1000", "0", "1"]);
        // bubblewrap and the init (the exec server) at least, all of them the sandbox's host uid.
        expect((await hostPidsOfUid(hostUid)).length).toBeGreaterThanOrEqual(2);
        const elsewhere = await runCommand(connection, "pwd", { cwd: "/tmp" });
        expect(elsewhere.stdout).toBe("/tmp\n");
      } finally {
        await connection.close();
      }
    } finally {
      await driver.destroy(handle);
    }
  });

  it("egress: tap0 with a default route, DNS on 10.0.2.3, and no way to the host's loopback", async () => {
    const loopbackOnly = await startProbeServer("127.0.0.1");
    const handle = await driver.create(spec("egress", { network: "egress" }));
    try {
      expect(metaOf(handle).slirpPid).not.toBeNull();
      const connection = await driver.connect(handle);
      try {
        const routes = await runCommand(connection, "cat /proc/net/route; cat /etc/resolv.conf");
        // Default route (destination 0.0.0.0) via 10.0.2.2, in /proc's little-endian hex.
        expect(routes.stdout).toMatch(/^tap0\s+00000000\s+0202000A\s/m);
        expect(routes.stdout).toContain("nameserver 10.0.2.3");
        // Without --disable-host-loopback, 10.0.2.2 would be the host's 127.0.0.1.
        const attempt = await runCommand(
          connection,
          `timeout 3 bash -c 'exec 3<>/dev/tcp/10.0.2.2/${loopbackOnly.port}' 2>/dev/null && echo connected; echo end`,
        );
        expect(attempt.stdout).toBe("end\n");
        expect(loopbackOnly.connections()).toBe(0);
        const lo = await runCommand(connection, "grep -c '^ *lo:' /proc/net/dev");
        expect(lo.stdout).toBe("1\n");
      } finally {
        await connection.close();
      }
    } finally {
      await driver.destroy(handle);
      await loopbackOnly.close();
    }
  });

  it("egress reaches a host on the network (NAT works), but not link-local addresses or the host's own", async () => {
    const remote = await startNetnsHost();
    const hostAddress = Object.values(networkInterfaces())
      .flat()
      .find((address) => address !== undefined && address.family === "IPv4" && !address.internal)?.address;
    const onHost = hostAddress === undefined ? undefined : await startProbeServer(hostAddress);
    const handle = await driver.create(spec("nat", { network: "egress" }));
    try {
      const connection = await driver.connect(handle);
      try {
        const dial = (address: string, port: number) =>
          runCommand(
            connection,
            `timeout 5 bash -c 'exec 3<>/dev/tcp/${address}/${port} && head -n 1 <&3' 2>&1; echo "exit $?"`,
          );
        expect((await dial(remote.address, remote.port)).stdout).toBe("polydev-probe\nexit 0\n");
        expect(await remote.connections()).toBe(1);
        // Refused at once by the sandbox's own routes, never through slirp4netns.
        expect((await dial("169.254.169.254", 80)).stdout).toMatch(
          /(Permission denied|unreachable)[\s\S]*exit 1\n$/,
        );
        if (onHost && hostAddress) {
          expect((await dial(hostAddress, onHost.port)).stdout).toMatch(
            /(Permission denied|unreachable)[\s\S]*exit 1\n$/,
          );
          expect(onHost.connections()).toBe(0);
        }
        // ...and the sandbox cannot take those routes away.
        const tamper = await runCommand(connection, "ip route del prohibit 169.254.0.0/16 2>&1; echo $?");
        expect(tamper.stdout).not.toMatch(/^0\n$/);
      } finally {
        await connection.close();
      }
    } finally {
      await driver.destroy(handle);
      await onHost?.close();
      await remote.close();
    }
  });

  it("destroy leaves no process of the sandbox's uid, no slirp4netns, no cgroup and no directory", async () => {
    const handle = await driver.create(spec("orphans", { network: "egress" }));
    const meta = metaOf(handle);
    const connection = await driver.connect(handle);
    // Something that would outlive a careless destroy: a daemonized process in a new session.
    await runCommand(connection, "setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo started");
    await connection.close();
    // bubblewrap, the init (the exec server), slirp4netns and the daemonized sleep.
    expect((await hostPidsOfUid(meta.hostUid)).length).toBeGreaterThanOrEqual(3);
    await driver.destroy(handle);
    expect(existsSync(meta.execSocket)).toBe(false);
    expect(await describePids(await hostPidsOfUid(meta.hostUid))).toEqual([]);
    if (meta.slirpPid !== null) expect(processExists(meta.slirpPid)).toBe(false);
    expect(processExists(meta.initPid)).toBe(false);
    for (const dir of meta.cgroupPaths) expect(existsSync(dir)).toBe(false);
    expect(existsSync(join(rootDir, handle.sandboxId))).toBe(false);
  });

  it("a new driver on the same root re-adopts a live sandbox and can exec in it", async () => {
    const handle = await driver.create(spec("adopt"));
    try {
      const connection = await driver.connect(handle);
      await runCommand(connection, "echo before > note.txt");
      await connection.close();
      const restarted = new NamespaceDriver({ rootDir, cgroupName, hostUidBase, hostUidCount: 10_000 });
      const observed = (await restarted.list()).find((sandbox) => sandbox.sandboxId === handle.sandboxId);
      expect(observed?.alive).toBe(true);
      if (!observed) return;
      const again = await restarted.connect(observed.handle);
      try {
        expect((await runCommand(again, "cat note.txt")).stdout).toBe("before\n");
      } finally {
        await again.close();
      }
      // The new instance knows the uid is taken.
      const sibling = await restarted.create(spec("adopt-sibling"));
      try {
        expect(metaOf(sibling).hostUid).not.toBe(metaOf(handle).hostUid);
      } finally {
        await restarted.destroy(sibling);
      }
    } finally {
      await driver.destroy(handle);
    }
  });

  it("a killed init makes isAlive and list report the sandbox dead, and destroy still cleans up", async () => {
    const handle = await driver.create(spec("killed"));
    const meta = metaOf(handle);
    try {
      expect(await driver.isAlive(handle)).toBe(true);
      process.kill(meta.initPid, "SIGKILL");
      await waitFor("the init to die", async () => ((await driver.isAlive(handle)) ? undefined : true));
      const observed = (await driver.list()).find((sandbox) => sandbox.sandboxId === handle.sandboxId);
      expect(observed?.alive).toBe(false);
      await expect(driver.connect(handle)).rejects.toMatchObject({ code: "sandbox_not_running" });
    } finally {
      await driver.destroy(handle);
    }
    expect(await hostPidsOfUid(meta.hostUid)).toEqual([]);
    for (const dir of meta.cgroupPaths) expect(existsSync(dir)).toBe(false);
  });

  it("creates sandboxes in parallel, each with its own host uid", async () => {
    const handles = await Promise.all(Array.from({ length: 24 }, (_, i) => driver.create(spec(`many${i}`))));
    try {
      const uids = new Set(handles.map((handle) => metaOf(handle).hostUid));
      expect(uids.size).toBe(handles.length);
      const alive = await Promise.all(handles.map((handle) => driver.isAlive(handle)));
      expect(alive.every(Boolean)).toBe(true);
    } finally {
      await Promise.all(handles.map((handle) => driver.destroy(handle)));
    }
  });

  it("refuses a malformed id and a taken one without harming the existing sandbox", async () => {
    await expect(driver.create({ ...spec("x"), id: "../escape" })).rejects.toMatchObject({
      code: "invalid_request",
    });
    await expect(driver.destroy({ sandboxId: "../..", driver: "namespace", data: {} })).rejects.toMatchObject(
      {
        code: "invalid_request",
      },
    );
    await expect(
      driver.create(spec("limits", { limits: { cpu: 1, memoryMb: 256, diskMb: 0, pidsMax: 128 } })),
    ).rejects.toMatchObject({ code: "invalid_request" });
    const handle = await driver.create(spec("taken"));
    try {
      await expect(driver.create({ ...spec("again"), id: handle.sandboxId })).rejects.toMatchObject({
        code: "conflict",
      });
      expect(await driver.isAlive(handle)).toBe(true);
    } finally {
      await driver.destroy(handle);
    }
  });

  it("a sandbox that does not start in time fails with sandbox_failed and leaves nothing behind", async () => {
    const uidBase = privateUidBase();
    const impatient = new NamespaceDriver({
      rootDir,
      hostUidBase: uidBase,
      hostUidCount: 10,
      startTimeoutMs: 1,
    });
    const failing = spec("slow");
    const error: unknown = await impatient.create(failing).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "sandbox_failed", message: expect.stringContaining("not ready") });
    expect(error).toHaveProperty("details.consoleTail");
    expect(existsSync(join(rootDir, failing.id))).toBe(false);
    expect((await impatient.list()).some((sandbox) => sandbox.sandboxId === failing.id)).toBe(false);
    // A start killed mid-clone can leave bubblewrap's child a zombie for the host's init to
    // reap (bubblewrap exits without waiting when its child dies before the uid map is written).
    await waitFor("no process of the sandbox's uid", async () =>
      (await hostPidsOfUid(uidBase + 1)).length === 0 ? true : undefined,
    );
  });

  it("refuses host uid ranges that include root or the 'unchanged' uid", () => {
    expect(() => new NamespaceDriver({ rootDir, hostUidBase: 4_294_967_290, hostUidCount: 10 })).toThrow(
      /hostUid/,
    );
    expect(() => new NamespaceDriver({ rootDir, hostUidBase: -1 })).toThrow(/hostUid/);
  });

  it("logs say when the memory limit killed a process", async () => {
    const handle = await driver.create(
      spec("oom", { limits: { cpu: 1, memoryMb: 32, diskMb: 8, pidsMax: 64 } }),
    );
    try {
      const connection = await driver.connect(handle);
      try {
        await runCommand(connection, "awk 'BEGIN { s = \"x\"; for (i = 0; i < 40; i++) s = s s }'");
      } finally {
        await connection.close();
      }
      expect(await driver.logs(handle)).toMatch(/memory limit reached, \d+ process\(es\) killed/);
    } finally {
      await driver.destroy(handle);
    }
  });

  it("joins every command to the sandbox's cgroups", async () => {
    const handle = await driver.create(spec("cgroups"));
    try {
      const connection = await driver.connect(handle);
      try {
        const inside = await runCommand(connection, "cat /proc/self/cgroup");
        // The cgroup namespace makes the sandbox's own cgroup its root.
        for (const line of inside.stdout.trim().split("\n")) {
          if (/:(memory|pids|freezer):/.test(line)) expect(line.endsWith(":/")).toBe(true);
        }
      } finally {
        await connection.close();
      }
      const { cgroupPaths } = metaOf(handle);
      const procs = execFileSync(
        "cat",
        cgroupPaths.map((dir) => join(dir, "cgroup.procs")),
      ).toString();
      expect(procs.trim().length).toBeGreaterThan(0);
    } finally {
      await driver.destroy(handle);
    }
  });
});
