/**
 * Hibernate with memory (runsc checkpoint/restore), fork and snapshot on real gvisor sandboxes,
 * and what a failure in the middle of them leaves: nothing but an error.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { AgentConnection, SandboxHandle, SandboxSpec } from "@polydev/core";
import { runCommand, waitFor } from "@polydev/core/testing";
import { BASE_IMAGE_ENV } from "@polydev/images";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GvisorDriver } from "./gvisor-driver.js";
import { removeCgroupParent } from "./testing/cgroup-parent.js";

const run = promisify(execFile);
const unavailable =
  testImagesUnavailable() ??
  (existsSync("/usr/bin/runsc") ? null : "runsc is not installed (apt-get install runsc)");

/**
 * A process that keeps a random value only in its memory (a shell variable), writes it once to
 * the disk, and writes it again to `seen-<n>` each time it gets SIGUSR1: after a restore, the
 * value it writes proves its memory came back.
 */
const KEEPER = [
  "v=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \\n')",
  "echo $v > kept",
  "n=0",
  "trap 'n=$((n+1)); echo \"$v\" > seen-$n' USR1",
  "while :; do sleep 0.05; done",
].join("; ");

async function mountsUnder(dir: string): Promise<string[]> {
  const mounts = await readFile("/proc/self/mountinfo", "utf8");
  return mounts
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((path) => path.startsWith(dir));
}

async function runscContainers(rootDir: string): Promise<string[]> {
  const { stdout } = await run("/usr/bin/runsc", [`--root=${join(rootDir, "runsc")}`, "list", "-q"]).catch(
    () => ({ stdout: "" }),
  );
  return stdout.split("\n").filter((id) => id.length > 0);
}

if (unavailable !== null) {
  describe("gvisor checkpoint, fork and snapshot", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const [rootfs, toolbox] = await Promise.all([testBaseRootfs(), testToolbox()]);
  const image = {
    name: "polydev/base",
    digest: "sha256:test",
    layers: [rootfs],
    env: { ...BASE_IMAGE_ENV },
  };

  describe("gvisor checkpoint, fork and snapshot", () => {
    let rootDir = "";
    let driver: GvisorDriver;
    let faultyDriver: GvisorDriver;
    let faultyRoot = "";
    const cgroupParent = `polydev-gvisor-ckpt-${process.pid}`;

    const spec = (label: string): SandboxSpec => ({
      id: `ckpt-${label}-${randomBytes(3).toString("hex")}`,
      limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
      network: "none",
      env: {},
      image,
    });

    async function withConnection<T>(
      on: GvisorDriver,
      handle: SandboxHandle,
      use: (connection: AgentConnection) => Promise<T>,
    ): Promise<T> {
      const connection = await on.connect(handle);
      try {
        return await use(connection);
      } finally {
        await connection.close();
      }
    }

    const sh = async (connection: AgentConnection, script: string): Promise<string> =>
      (await runCommand(connection, script)).stdout;

    /** Starts the keeper and returns its background id and the value it keeps. */
    async function startKeeper(connection: AgentConnection): Promise<{ id: string; value: string }> {
      const keeper = await connection.startBackground({ argv: ["/bin/sh", "-c", KEEPER] });
      const value = await waitFor("the keeper's value", async () => {
        const text = (await sh(connection, "cat kept 2>/dev/null")).trim();
        return text.length === 16 ? text : undefined;
      });
      return { id: keeper.id, value };
    }

    /** What the keeper says from memory when asked the `n`th time. */
    async function askKeeper(connection: AgentConnection, id: string, n: number): Promise<string> {
      await connection.signalBackground(id, "SIGUSR1");
      return waitFor(`the keeper's answer ${n}`, async () => {
        const text = (await sh(connection, `cat seen-${n} 2>/dev/null`)).trim();
        return text.length === 16 ? text : undefined;
      });
    }

    beforeAll(async () => {
      rootDir = await mkdtemp(join(tmpdir(), "polydev-gvisor-ckpt-"));
      driver = new GvisorDriver({ rootDir, toolboxDir: toolbox, cgroupParent });
      // A runsc whose restores end with the restored Sentry killed: the sandbox dies in the
      // middle of coming back, before its agent listens again.
      faultyRoot = await mkdtemp(join(tmpdir(), "polydev-gvisor-ckpt-faulty-"));
      const wrapper = join(faultyRoot, "runsc-killed-on-restore");
      await writeFile(
        wrapper,
        [
          "#!/bin/sh",
          'for arg in "$@"; do case "$arg" in restore) restoring=1;; esac; done',
          '[ -z "$restoring" ] && exec /usr/bin/runsc "$@"',
          '/usr/bin/runsc "$@" || exit $?',
          'for arg in "$@"; do id=$arg; done',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a template.
          'root=$(for arg in "$@"; do case "$arg" in --root=*) echo "${arg#--root=}";; esac; done)',
          'pid=$(/usr/bin/runsc --root="$root" state "$id" | sed -n \'s/.*"pid": *\\([0-9]*\\).*/\\1/p\')',
          'kill -9 "$pid"',
        ].join("\n"),
      );
      await chmod(wrapper, 0o755);
      faultyDriver = new GvisorDriver({
        rootDir: join(faultyRoot, "state"),
        toolboxDir: toolbox,
        cgroupParent,
        runscPath: wrapper,
      });
      expect((await driver.probe()).features).toEqual(
        expect.arrayContaining(["hibernate-memory", "fork", "snapshot"]),
      );
    });

    afterAll(async () => {
      for (const each of [driver, faultyDriver]) {
        for (const sandbox of await each.list()) await each.destroy(sandbox.handle).catch(() => undefined);
      }
      await rm(rootDir, { recursive: true, force: true });
      await rm(faultyRoot, { recursive: true, force: true });
      await removeCgroupParent(cgroupParent);
    });

    it("hibernate writes processes and memory to disk; resume brings them back", async () => {
      const handle = await driver.create(spec("memory"));
      try {
        const { id, value } = await withConnection(driver, handle, async (connection) => {
          await sh(connection, "echo in-memory > /tmp/memory-file");
          return startKeeper(connection);
        });
        await driver.hibernate(handle);
        const dir = join(rootDir, "sandboxes", handle.sandboxId);
        expect(existsSync(join(dir, "checkpoint"))).toBe(true);
        // Nothing runs: no container, and no connection.
        expect(await runscContainers(rootDir)).not.toContain(handle.sandboxId);
        await expect(driver.connect(handle)).rejects.toMatchObject({ code: "sandbox_not_running" });
        expect(await driver.isAlive(handle)).toBe(true);
        expect((await driver.list()).find((s) => s.sandboxId === handle.sandboxId)?.alive).toBe(true);

        await driver.resume(handle);
        expect(existsSync(join(dir, "checkpoint"))).toBe(false);
        await withConnection(driver, handle, async (connection) => {
          expect(await askKeeper(connection, id, 1)).toBe(value);
          // /tmp is the Sentry's memory: it came back with the checkpoint.
          expect(await sh(connection, "cat /tmp/memory-file")).toBe("in-memory\n");
        });
        // And again: a restored sandbox checkpoints like a created one.
        await driver.hibernate(handle);
        await driver.resume(handle);
        await withConnection(driver, handle, async (connection) => {
          expect(await askKeeper(connection, id, 2)).toBe(value);
        });
      } finally {
        await driver.destroy(handle);
      }
      expect(await mountsUnder(join(rootDir, "mounts", handle.sandboxId))).toEqual([]);
    });

    it("fork restores one checkpoint into sandboxes with their own copies of the disk", async () => {
      const source = await driver.create(spec("source"));
      let forks: SandboxHandle[] = [];
      try {
        const { id, value } = await withConnection(driver, source, async (connection) => {
          await sh(connection, "echo before-fork > note");
          return startKeeper(connection);
        });
        forks = await driver.fork(source, [spec("fork-a"), spec("fork-b")]);
        expect(forks).toHaveLength(2);
        // The source runs on, with its memory.
        await withConnection(driver, source, async (connection) => {
          expect(await askKeeper(connection, id, 1)).toBe(value);
          await sh(connection, "echo source > note");
        });
        for (const [index, fork] of forks.entries()) {
          await withConnection(driver, fork, async (connection) => {
            // The keeper of the source, with the source's memory, in each fork.
            expect(await askKeeper(connection, id, 1)).toBe(value);
            expect(await sh(connection, "cat note")).toBe("before-fork\n");
            await sh(connection, `echo fork-${index} > note`);
          });
        }
        for (const [index, fork] of forks.entries()) {
          await withConnection(driver, fork, async (connection) => {
            expect(await sh(connection, "cat note")).toBe(`fork-${index}\n`);
          });
        }
        await withConnection(driver, source, async (connection) => {
          expect(await sh(connection, "cat note")).toBe("source\n");
        });
        // No checkpoint of the fork is left in the source's directory.
        const left = await readdir(join(rootDir, "sandboxes", source.sandboxId));
        expect(left.filter((name) => name.startsWith("fork-") || name === "checkpoint")).toEqual([]);
      } finally {
        for (const fork of forks) await driver.destroy(fork);
        await driver.destroy(source);
      }
    });

    it("a fork whose id is taken makes no fork at all, and the source runs on", async () => {
      const source = await driver.create(spec("taken"));
      const other = await driver.create(spec("other"));
      try {
        const fresh = spec("fresh");
        await expect(
          driver.fork(source, [fresh, { ...spec("dup"), id: other.sandboxId }]),
        ).rejects.toMatchObject({ code: "conflict" });
        expect(existsSync(join(rootDir, "sandboxes", fresh.id))).toBe(false);
        expect(await runscContainers(rootDir)).not.toContain(fresh.id);
        await withConnection(driver, source, async (connection) => {
          expect(await sh(connection, "echo alive")).toBe("alive\n");
        });
        await withConnection(driver, other, async (connection) => {
          expect(await sh(connection, "echo alive")).toBe("alive\n");
        });
      } finally {
        await driver.destroy(other);
        await driver.destroy(source);
      }
    });

    it("snapshot copies the sandbox's changes as a layer and the sandbox runs on", async () => {
      const handle = await driver.create(spec("snapshot"));
      const target = join(rootDir, `snapshot-${randomBytes(3).toString("hex")}`);
      try {
        await withConnection(driver, handle, async (connection) => {
          await sh(connection, "echo snapped > snapped.txt");
        });
        await driver.snapshot(handle, target);
        const home = (await run("sh", ["-c", `find ${target}/upper -name snapped.txt`])).stdout.trim();
        expect(await readFile(home, "utf8")).toBe("snapped\n");
        await withConnection(driver, handle, async (connection) => {
          expect(await sh(connection, "cat snapped.txt")).toBe("snapped\n");
        });
      } finally {
        await driver.destroy(handle);
        await rm(target, { recursive: true, force: true });
      }
    });

    it("a destroy that arrives during a checkpoint leaves nothing behind", async () => {
      const handle = await driver.create(spec("destroy-mid"));
      const hibernating = driver.hibernate(handle);
      const destroying = driver.destroy(handle);
      await Promise.allSettled([hibernating]);
      await destroying;
      expect(existsSync(join(rootDir, "sandboxes", handle.sandboxId))).toBe(false);
      expect(await mountsUnder(join(rootDir, "mounts", handle.sandboxId))).toEqual([]);
      expect(await runscContainers(rootDir)).not.toContain(handle.sandboxId);
      expect(await driver.isAlive(handle)).toBe(false);
    });

    it("a destroy that arrives during a restore leaves nothing behind", async () => {
      const handle = await driver.create(spec("destroy-restore"));
      await driver.hibernate(handle);
      const resuming = driver.resume(handle);
      const destroying = driver.destroy(handle);
      await Promise.allSettled([resuming]);
      await destroying;
      expect(existsSync(join(rootDir, "sandboxes", handle.sandboxId))).toBe(false);
      expect(await mountsUnder(join(rootDir, "mounts", handle.sandboxId))).toEqual([]);
      expect(await runscContainers(rootDir)).not.toContain(handle.sandboxId);
    });

    it("a fork whose restores are killed answers an error and leaves no fork; the source keeps its checkpoint", async () => {
      const state = join(faultyRoot, "state");
      const source = await faultyDriver.create(spec("fork-killed"));
      const child = spec("fork-killed-child");
      try {
        await expect(faultyDriver.fork(source, [child])).rejects.toMatchObject({ name: "PolydevError" });
        expect(existsSync(join(state, "sandboxes", child.id))).toBe(false);
        expect(await mountsUnder(join(state, "mounts", child.id))).toEqual([]);
        expect(await runscContainers(state)).not.toContain(child.id);
        // The source's own restore was killed too: it stays hibernated, its checkpoint kept.
        expect(await faultyDriver.isAlive(source)).toBe(true);
        expect(existsSync(join(state, "sandboxes", source.sandboxId, "checkpoint"))).toBe(true);
      } finally {
        await faultyDriver.destroy(source);
      }
      expect(existsSync(join(state, "sandboxes", source.sandboxId))).toBe(false);
    });

    it("a restore whose Sentry is killed answers an error, leaves no container, and destroy cleans up", async () => {
      const handle = await faultyDriver.create(spec("killed"));
      const state = join(faultyRoot, "state");
      try {
        await faultyDriver.hibernate(handle);
        await expect(faultyDriver.resume(handle)).rejects.toMatchObject({ name: "PolydevError" });
        expect(await runscContainers(state)).not.toContain(handle.sandboxId);
        // Still hibernated: its checkpoint is kept for another try.
        await expect(faultyDriver.connect(handle)).rejects.toMatchObject({ code: "sandbox_not_running" });
      } finally {
        await faultyDriver.destroy(handle);
      }
      expect(existsSync(join(state, "sandboxes", handle.sandboxId))).toBe(false);
      expect(await mountsUnder(join(state, "mounts", handle.sandboxId))).toEqual([]);
    });
  });
}
