/**
 * Image sandboxes: root inside a user namespace of 65,536 uids, an overlay of the image's layers
 * on a disk that outlives the sandbox's processes (stop/start), snapshots and forks.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readlinkSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { AgentConnection, SandboxHandle, SandboxImage, SandboxSpec } from "@polydev/core";
import { BASE_IMAGE_ENV, StoragePool } from "@polydev/images";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceDriver } from "./namespace-driver.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";

const unavailable = testImagesUnavailable();
/** Building the default image takes minutes the first time on a host (then it is cached). */
const BUILD_TIMEOUT_MS = 20 * 60_000;

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

/** The disk a sandbox's meta.json names (a new one, or a spare the driver had ready). */
function diskOf(handle: SandboxHandle): string {
  const image = handle.data.image;
  if (typeof image !== "object" || image === null || !("disk" in image) || typeof image.disk !== "string") {
    throw new Error("the handle names no disk");
  }
  return image.disk;
}

async function waitForExit(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (!existsSync(`/proc/${pid}`)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.skipIf(unavailable !== null)(
  `image sandboxes${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let rootDir: string;
    let storageDir: string;
    let pool: StoragePool;
    let driver: NamespaceDriver;
    const cgroupName = privateCgroupName();
    let image: SandboxImage;
    let toolbox: string;
    const spec = (id: string): SandboxSpec => ({
      id,
      limits: { cpu: 1, memoryMb: 512, diskMb: 1024, pidsMax: 256 },
      network: "none",
      env: {},
      image,
    });

    beforeAll(async () => {
      const [rootfs, toolboxDir] = await Promise.all([testBaseRootfs(), testToolbox()]);
      toolbox = toolboxDir;
      image = {
        name: "polydev/base",
        digest: "sha256:test",
        layers: [rootfs],
        env: { ...BASE_IMAGE_ENV },
        user: "user",
      };
      rootDir = await mkdtemp(join(tmpdir(), "polydev-image-"));
      storageDir = await mkdtemp(join(tmpdir(), "polydev-image-storage-"));
      pool = new StoragePool({
        mountPoint: join(storageDir, "pool"),
        imageFile: join(storageDir, "pool.xfs"),
        sizeBytes: 20 * 2 ** 30,
      });
      await pool.open();
      driver = newDriver();
      await driver.probe();
    }, BUILD_TIMEOUT_MS);
    const newDriver = (): NamespaceDriver =>
      new NamespaceDriver({
        rootDir,
        cgroupName,
        hostUidBase: privateUidBase(),
        hostUidCount: 10_000,
        storage: pool,
        toolboxDir: toolbox,
        execSocketRoot: `/run/polydev-image-test-${process.pid}`,
      });
    afterAll(async () => {
      for (const observed of await driver.list())
        await driver.destroy(observed.handle).catch(() => undefined);
      await pool.close();
      await rm(`/run/polydev-image-test-${process.pid}`, { recursive: true, force: true });
      await rm(rootDir, { recursive: true, force: true });
      // EBUSY while a sandbox starting elsewhere briefly holds a copy of the pool's mount.
      await rm(storageDir, { recursive: true, force: true, maxRetries: 50, retryDelay: 100 });
      await removeCgroupParent(cgroupName);
    });

    it("runs as root inside a user namespace of 65,536 uids, and as any user of the image", async () => {
      const handle = await driver.create(spec("img-root"));
      const agent = await driver.connect(handle);
      const root = await run(
        agent,
        ["/bin/sh", "-c", "id -u; cat /proc/self/uid_map; chown 1234:1234 /tmp && stat -c %u /tmp"],
        "root",
      );
      expect(root.err).toBe("");
      const [uid, map, owner] = root.out.trim().split("\n");
      expect(uid).toBe("0");
      expect(map?.trim().split(/\s+/)).toEqual(["0", String(handle.data.hostUid), "65536"]);
      expect(owner).toBe("1234");
      // The process that waits on the sandbox stays in the host's mount namespace: a copy of it
      // would pin every host mount of the moment (other disks, whole pools) for the sandbox's life.
      expect(readlinkSync(`/proc/${Number(handle.data.bwrapPid)}/ns/mnt`)).toBe(
        readlinkSync("/proc/self/ns/mnt"),
      );
      // File operations go through the init's own helper, in the default user's home.
      await agent.files.write("notes/hello.txt", Readable.from([Buffer.from("hi")]));
      expect((await run(agent, ["/bin/cat", "/home/user/notes/hello.txt"])).out).toBe("hi");
      expect((await run(agent, ["/usr/bin/stat", "-c", "%U", "/home/user/notes/hello.txt"])).out).toBe(
        "user\n",
      );
      expect((await agent.files.stat("notes/hello.txt")).sizeBytes).toBe(2);
      // The default user is the image's, with passwordless sudo, and a package manager that works.
      const user = await run(agent, [
        "/bin/sh",
        "-c",
        "id -un; echo $HOME; sudo -n id -u; sudo -n dpkg -s jq | grep Status",
      ]);
      expect(user.err).toBe("");
      expect(user.out).toBe("user\n/home/user\n0\nStatus: install ok installed\n");
      // The toolbox's node and agent CLIs work in the image, which has neither.
      const tools = await run(agent, [
        "/bin/sh",
        "-c",
        "node --version && claude --version && command -v node",
      ]);
      expect(tools.err).toBe("");
      expect(tools.out).toMatch(/^v\d+\.\d+\.\d+\n.*\n\/opt\/polydev\/bin\/node\n$/s);
      const nobody = await run(agent, ["/usr/bin/id", "-un"], "nobody");
      expect(nobody.err).toBe("");
      expect(nobody.out.trim()).toBe("nobody");
      await driver.destroy(handle);
    });

    it("keeps its disk across stop and start", async () => {
      const handle = await driver.create(spec("img-durable"));
      let agent = await driver.connect(handle);
      expect((await run(agent, ["/bin/sh", "-c", "echo kept > /home/user/file && sync"])).code).toBe(0);
      await driver.stop?.(handle);
      expect(await driver.isAlive(handle)).toBe(false);
      const again = await driver.start?.(handle, spec("img-durable"));
      if (again === undefined) throw new Error("start is missing");
      agent = await driver.connect(again);
      expect((await run(agent, ["/bin/cat", "/home/user/file"])).out).toBe("kept\n");
      await driver.destroy(again);
    });

    it("forks copies of the disk that do not see each other's changes", async () => {
      const handle = await driver.create(spec("img-parent"));
      const agent = await driver.connect(handle);
      await run(agent, ["/bin/sh", "-c", "echo parent > /home/user/shared"]);
      const forks = (await driver.fork?.(handle, [spec("img-fork-a"), spec("img-fork-b")])) ?? [];
      expect(forks).toHaveLength(2);
      const [a, b] = await Promise.all(forks.map((fork: SandboxHandle) => driver.connect(fork)));
      if (!a || !b) throw new Error("forks did not connect");
      await run(a, ["/bin/sh", "-c", "echo a > /home/user/shared"]);
      expect((await run(b, ["/bin/cat", "/home/user/shared"])).out).toBe("parent\n");
      expect((await run(agent, ["/bin/cat", "/home/user/shared"])).out).toBe("parent\n");
      expect((await run(a, ["/bin/cat", "/home/user/shared"])).out).toBe("a\n");
      for (const h of [handle, ...forks]) await driver.destroy(h);
    });

    it("fills its disk to exactly diskMb: ENOSPC inside, for root too, and nothing else", async () => {
      const small = { ...spec("img-full"), limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 64 } };
      const handle = await driver.create(small);
      const agent = await driver.connect(handle);
      const fill = await run(agent, [
        "/bin/sh",
        "-c",
        "dd if=/dev/zero of=/home/user/big bs=1M count=200 2>&1; echo done",
      ]);
      expect(fill.out).toContain("No space left on device");
      const size = Number((await run(agent, ["/usr/bin/stat", "-c", "%s", "/home/user/big"])).out);
      expect(size).toBeGreaterThan(40 * 2 ** 20);
      expect(size).toBeLessThanOrEqual(64 * 2 ** 20);
      // The sandbox itself still works.
      expect((await run(agent, ["/bin/echo", "alive"])).out).toBe("alive\n");
      await driver.destroy(handle);
    });

    it("loses no synced file in a host reboot: every process killed, the pool unmounted, /run cleared", async () => {
      // A quiet moment first, so that its disk is a spare the driver made ahead of time: the new
      // driver after the "reboot" must not take a spare a sandbox holds for a leftover.
      await driver.create(spec("img-reboot-warmup")).then((warm) => driver.destroy(warm));
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const handle = await driver.create(spec("img-reboot"));
      expect(diskOf(handle)).toMatch(/^disks\/spare-/);
      const agent = await driver.connect(handle);
      expect(
        (await run(agent, ["/bin/sh", "-c", "echo synced > /home/user/kept && sync /home/user/kept"])).code,
      ).toBe(0);
      const initPid = Number(handle.data.initPid);
      const monitorPid = Number(handle.data.bwrapPid);
      for (const pid of [monitorPid, initPid]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone with the other.
        }
      }
      await waitForExit(initPid);
      await pool.close();
      await rm(`/run/polydev-image-test-${process.pid}`, { recursive: true, force: true });
      await pool.open();
      driver = newDriver();
      await driver.probe();
      expect(await driver.isAlive(handle)).toBe(false);
      const again = await driver.start?.(handle, spec("img-reboot"));
      if (again === undefined) throw new Error("start is missing");
      expect((await run(await driver.connect(again), ["/bin/cat", "/home/user/kept"])).out).toBe("synced\n");
      await driver.destroy(again);
    });

    it("hands a spare made ahead of time the environment of the create that claims it", async () => {
      const spare = await driver.create(spec("img-spare"));
      const claimed = await driver.adopt?.(spare, { ...spec("img-spare"), env: { CLAIMED_BY: "alice" } });
      if (claimed === undefined) throw new Error("adopt is missing");
      const agent = await driver.connect(claimed);
      expect((await run(agent, ["/bin/sh", "-c", "echo $CLAIMED_BY"])).out).toBe("alice\n");
      await expect(driver.adopt?.(spare, { ...spec("img-spare"), network: "egress" })).rejects.toThrow(
        /network/,
      );
      await driver.destroy(claimed);
    });

    it("makes setuid bits and file capabilities mean nothing outside the sandbox's own user namespace", async () => {
      const handle = await driver.create(spec("img-setuid"));
      const agent = await driver.connect(handle);
      // Inside, a setuid-root program gives its root: the sandbox's own, with its bounded capabilities.
      const made = await run(
        agent,
        ["/bin/sh", "-c", "cp /usr/bin/id /usr/local/bin/rootid && chmod 4755 /usr/local/bin/rootid"],
        "root",
      );
      expect(made.err).toBe("");
      expect((await run(agent, ["/usr/local/bin/rootid", "-u"])).out).toBe("0\n");
      // A file capability cannot even be written: CAP_SETFCAP is not in root's bounding set.
      const fcap = await run(
        agent,
        [
          "python3",
          "-c",
          "import os\ntry:\n os.setxattr('/usr/local/bin/rootid', 'security.capability', bytes(20))\n print('set')\nexcept OSError as e:\n print(e.errno)",
        ],
        "root",
      );
      expect(fcap.out.trim()).not.toBe("set");
      // On the host the same file sits on a nosuid mount, in root-only directories, owned by the
      // image's uid 0 as the host's: unreachable and meaningless there.
      const upper = join(pool.root, diskOf(handle), "upper", "usr/local/bin/rootid");
      const options = execFileSync("findmnt", ["-no", "OPTIONS", "-T", upper], { encoding: "utf8" });
      expect(options.split(",")).toContain("nosuid");
      expect(statSync(upper).mode & 0o4000).toBe(0o4000);
      expect(statSync(join(pool.root, "disks")).mode & 0o077).toBe(0);
      await driver.destroy(handle);
    });

    it("runs an image with no files at all: file operations by the init, programs from the toolbox", async () => {
      const empty = await mkdtemp(join(tmpdir(), "polydev-empty-image-"));
      try {
        const bare: SandboxImage = { name: "test/empty", digest: "sha256:empty", layers: [empty], env: {} };
        const handle = await driver.create({ ...spec("img-empty"), image: bare });
        const agent = await driver.connect(handle);
        await agent.files.write("hello.txt", Readable.from([Buffer.from("no shell needed")]));
        expect((await agent.files.list(".")).map((entry) => entry.path)).toContain("hello.txt");
        const node = await run(agent, [
          "/opt/polydev/bin/node",
          "-e",
          "console.log(require('fs').readFileSync('/root/hello.txt', 'utf8'), process.getuid())",
        ]);
        expect(node.err).toBe("");
        expect(node.out).toBe("no shell needed 0\n");
        await driver.destroy(handle);
      } finally {
        await rm(empty, { recursive: true, force: true });
      }
    });

    it("gives root no way to nested user namespaces, mounts or the network's configuration", async () => {
      const handle = await driver.create(spec("img-walls"));
      const agent = await driver.connect(handle);
      const nested = await run(agent, ["/usr/bin/unshare", "-U", "/bin/true"], "root");
      expect(nested.code).not.toBe(0);
      const caps = await run(agent, ["/bin/sh", "-c", "grep CapBnd /proc/self/status"], "root");
      const bounding = BigInt(`0x${caps.out.trim().split(/\s+/)[1]}`);
      const CAP_SYS_ADMIN = 21n;
      const CAP_NET_ADMIN = 12n;
      const CAP_NET_RAW = 13n;
      for (const cap of [CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW]) expect((bounding >> cap) & 1n).toBe(0n);
      const mount = await run(agent, ["/bin/mount", "-t", "tmpfs", "x", "/mnt"], "root");
      expect(mount.code).not.toBe(0);
      await driver.destroy(handle);
    });
  },
);
