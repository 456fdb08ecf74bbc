/**
 * Image sandboxes: root inside a user namespace of 65,536 uids, an overlay of the image's layers
 * on a disk that outlives the sandbox's processes (stop/start), snapshots and forks.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentConnection, SandboxHandle, SandboxImage, SandboxSpec } from "@polydev/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceDriver } from "./namespace-driver.js";
import { plainDiskStorage } from "./testing/plain-disk-storage.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";

const ROOTFS = process.env.POLYDEV_TEST_ROOTFS ?? "/var/tmp/lead-rootfs";
const available = process.getuid?.() === 0 && existsSync(join(ROOTFS, "usr/bin/sudo"));

async function run(
  agent: AgentConnection,
  argv: string[],
  user?: string,
): Promise<{ code: number | null; out: string; err: string }> {
  const proc = await agent.exec({ argv, ...(user === undefined ? {} : { user }) });
  proc.stdin.end();
  let out = "";
  let err = "";
  proc.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  proc.stderr.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exit = await proc.exited;
  return { code: exit.exitCode, out, err };
}

describe.skipIf(!available)("image sandboxes (needs root and a Debian root file system)", () => {
  let rootDir: string;
  let storageDir: string;
  let driver: NamespaceDriver;
  const cgroupName = privateCgroupName();
  const image: SandboxImage = {
    name: "test/debian",
    digest: "sha256:test",
    layers: [ROOTFS],
    env: {},
    user: "root",
  };
  const spec = (id: string): SandboxSpec => ({
    id,
    limits: { cpu: 1, memoryMb: 512, diskMb: 1024, pidsMax: 256 },
    network: "none",
    env: {},
    image,
  });

  beforeAll(async () => {
    rootDir = await mkdtemp(join(tmpdir(), "polydev-image-"));
    storageDir = await mkdtemp(join(tmpdir(), "polydev-image-storage-"));
    driver = new NamespaceDriver({
      rootDir,
      cgroupName,
      hostUidBase: privateUidBase(),
      hostUidCount: 10_000,
      storage: plainDiskStorage(storageDir),
    });
    await driver.probe();
  });
  afterAll(async () => {
    for (const observed of await driver.list()) await driver.destroy(observed.handle).catch(() => undefined);
    await rm(rootDir, { recursive: true, force: true });
    await rm(storageDir, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  it("runs as root inside a user namespace of 65,536 uids, and as any user of the image", async () => {
    const handle = await driver.create(spec("img-root"));
    const agent = await driver.connect(handle);
    const root = await run(agent, [
      "/bin/sh",
      "-c",
      "id -u; cat /proc/self/uid_map; chown 1234:1234 /tmp && stat -c %u /tmp",
    ]);
    expect(root.err).toBe("");
    const [uid, map, owner] = root.out.trim().split("\n");
    expect(uid).toBe("0");
    expect(map?.trim().split(/\s+/)).toEqual(["0", String(handle.data.hostUid), "65536"]);
    expect(owner).toBe("1234");
    const nobody = await run(agent, ["/usr/bin/id", "-un"], "nobody");
    expect(nobody.err).toBe("");
    expect(nobody.out.trim()).toBe("nobody");
    await driver.destroy(handle);
  });

  it("keeps its disk across stop and start", async () => {
    const handle = await driver.create(spec("img-durable"));
    let agent = await driver.connect(handle);
    expect((await run(agent, ["/bin/sh", "-c", "echo kept > /root/file && sync"])).code).toBe(0);
    await driver.stop?.(handle);
    expect(await driver.isAlive(handle)).toBe(false);
    const again = await driver.start?.(handle, spec("img-durable"));
    if (again === undefined) throw new Error("start is missing");
    agent = await driver.connect(again);
    expect((await run(agent, ["/bin/cat", "/root/file"])).out).toBe("kept\n");
    await driver.destroy(again);
  });

  it("forks copies of the disk that do not see each other's changes", async () => {
    const handle = await driver.create(spec("img-parent"));
    const agent = await driver.connect(handle);
    await run(agent, ["/bin/sh", "-c", "echo parent > /root/shared"]);
    const forks = (await driver.fork?.(handle, [spec("img-fork-a"), spec("img-fork-b")])) ?? [];
    expect(forks).toHaveLength(2);
    const [a, b] = await Promise.all(forks.map((fork: SandboxHandle) => driver.connect(fork)));
    if (!a || !b) throw new Error("forks did not connect");
    await run(a, ["/bin/sh", "-c", "echo a > /root/shared"]);
    expect((await run(b, ["/bin/cat", "/root/shared"])).out).toBe("parent\n");
    expect((await run(agent, ["/bin/cat", "/root/shared"])).out).toBe("parent\n");
    expect((await run(a, ["/bin/cat", "/root/shared"])).out).toBe("a\n");
    for (const h of [handle, ...forks]) await driver.destroy(h);
  });

  it("gives root no way to nested user namespaces, mounts or the network's configuration", async () => {
    const handle = await driver.create(spec("img-walls"));
    const agent = await driver.connect(handle);
    const nested = await run(agent, ["/usr/bin/unshare", "-U", "/bin/true"]);
    expect(nested.code).not.toBe(0);
    const caps = await run(agent, ["/bin/sh", "-c", "grep CapBnd /proc/self/status"]);
    const bounding = BigInt(`0x${caps.out.trim().split(/\s+/)[1]}`);
    const CAP_SYS_ADMIN = 21n;
    const CAP_NET_ADMIN = 12n;
    const CAP_NET_RAW = 13n;
    for (const cap of [CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW]) expect((bounding >> cap) & 1n).toBe(0n);
    const mount = await run(agent, ["/bin/mount", "-t", "tmpfs", "x", "/mnt"]);
    expect(mount.code).not.toBe(0);
    await driver.destroy(handle);
  });
});
