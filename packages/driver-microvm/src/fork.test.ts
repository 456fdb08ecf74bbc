/**
 * Fork on real QEMU (TCG): few cases, each restores several VMs. What a fork must be (its own
 * files after the fork, its own environment, the source carrying on) and what a failure must
 * leave (nothing: no QEMU, no disk, no layer).
 */
import { spawnSync } from "node:child_process";
import { watch } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { SandboxHandle, SandboxImage, SandboxSpec } from "@polydev/core";
import { readText, runCommand, writeText } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MicrovmDriver } from "./microvm-driver.js";
import type { TestDriver } from "./testing/test-driver.js";
import { microvmUnavailable, testDriver, testImage } from "./testing/test-driver.js";

const unavailable = microvmUnavailable();
const TIMEOUT = 600_000;

const spec = (id: string, image: SandboxImage, env: Record<string, string> = {}): SandboxSpec => ({
  id,
  image,
  limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
  network: "none",
  env,
});

/** QEMU processes whose command line names this driver's directory. */
async function qemusUnder(rootDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.startsWith("/usr/bin/qemu-system") && cmdline.includes(rootDir)) pids.push(Number(entry));
  }
  return pids;
}

const entries = (dir: string): Promise<string[]> => readdir(dir).catch(() => []);

/** A fork restored over shared RAM copies less than this; one loaded from the stream, about 145 MiB. */
const SHARED_RAM_COPIED_KB = 100 * 1024;

/**
 * Of a QEMU's guest RAM mapping (the sealed memfd, guest-ram.ts), the kB other processes map
 * too (Shared_*), and the kB that are its own copies (Private_Dirty: pages written into the
 * private mapping, by the guest or by a state loaded from a stream).
 */
async function guestRamSharing(pid: number): Promise<{ sharedKb: number; copiedKb: number }> {
  const smaps = await readFile(`/proc/${pid}/smaps`, "utf8");
  const blocks = smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const ram = blocks.filter((block) => block.split("\n")[0]?.includes("memfd:polydev-guest-ram"));
  const kb = (block: string, field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(block)?.[1] ?? 0);
  let sharedKb = 0;
  let copiedKb = 0;
  for (const block of ram) {
    sharedKb += kb(block, "Shared_Clean") + kb(block, "Shared_Dirty");
    copiedKb += kb(block, "Private_Dirty");
  }
  return { sharedKb, copiedKb };
}

/** No QEMU, sandbox, run directory or layer of the driver's is left. */
async function expectNothingLeft(rootDir: string): Promise<void> {
  expect(await qemusUnder(rootDir)).toEqual([]);
  expect(await entries(join(rootDir, "sandboxes"))).toEqual([]);
  expect(await entries(join(rootDir, "vms"))).toEqual([]);
  expect(await entries(join(rootDir, "layers"))).toEqual([]);
}

/** Resolves once `name` appears in `dir` (watched, not polled on a timer). */
function appears(dir: string, matches: (name: string) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dir, (_event, name) => {
      if (name !== null && matches(String(name))) {
        watcher.close();
        resolve();
      }
    });
    watcher.on("error", reject);
  });
}

async function run(driver: MicrovmDriver, handle: SandboxHandle, line: string): Promise<string> {
  const connection = await driver.connect(handle);
  try {
    const result = await runCommand(connection, line);
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    return result.stdout;
  } finally {
    connection.close();
  }
}

if (unavailable !== null) {
  describe("microvm fork", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  describe("microvm fork", () => {
    let setup: TestDriver;
    let image: SandboxImage;
    beforeAll(async () => {
      image = await testImage();
      setup = await testDriver("fork");
    }, TIMEOUT);
    afterAll(async () => {
      await setup?.cleanup();
    }, TIMEOUT);

    it("advertises fork", async () => {
      expect((await setup.driver.probe()).features).toContain("fork");
    });

    it(
      "forks 1→2: each sees the files from before, writes diverge, env per fork, the source runs on",
      async () => {
        const { driver } = setup;
        const source = await driver.create(spec("fork-src", image, { WHO: "source" }));
        const connection = await driver.connect(source);
        await writeText(connection, "before.txt", "written before the fork");
        connection.close();
        // A process of the source's that lives through the fork: forks restore its memory.
        await run(driver, source, "echo $RANDOM$RANDOM > /root/seed-before; sync");

        const forks = await driver.fork(source, [
          spec("fork-a", image, { WHO: "a" }),
          spec("fork-b", image, { WHO: "b" }),
        ]);
        expect(forks.map((fork) => fork.sandboxId)).toEqual(["fork-a", "fork-b"]);
        const [a, b] = forks as [SandboxHandle, SandboxHandle];

        // The frozen layer is root's and read-only; a VM's uid can neither list the layers
        // (names are its capability) nor write one (escape probe for this host surface).
        const layers = await readdir(join(setup.rootDir, "layers"));
        expect(layers).toHaveLength(1);
        const layer = join(setup.rootDir, "layers", layers[0] ?? "");
        const info = await stat(layer);
        expect([info.uid, info.mode & 0o777]).toEqual([0, 0o444]);
        const probe = spawnSync(
          "/bin/sh",
          ["-c", 'ls "$1" && echo listed; echo x >> "$2" && echo wrote; true', "sh", dirname(layer), layer],
          { uid: 1_600_000_321, gid: 1_600_000_321, encoding: "utf8" },
        );
        expect(probe.stdout).not.toContain("listed");
        expect(probe.stdout).not.toContain("wrote");

        // The host cache's pruning spares what these VMs still need: their boot snapshot, the
        // image's root disk and the empty disk under every changes disk's chain.
        const kept = [...(await driver.cacheReferences())];
        expect(kept.filter((name) => name.startsWith("snapshot-"))).toHaveLength(1);
        expect(kept.filter((name) => name.startsWith("root-"))).toHaveLength(1);
        expect(kept.some((name) => name.startsWith("empty-"))).toBe(true);
        // Each fork holds them too, so another server pruning the same cache keeps them.
        const rootEntry = kept.find((name) => name.startsWith("root-")) ?? "";
        const holders = join("/var/cache/polydev/microvm", rootEntry, ".holders");
        const holding = await Promise.all(
          (await readdir(holders)).map((name) => readFile(join(holders, name), "utf8")),
        );
        for (const id of ["fork-src", "fork-a", "fork-b"]) {
          expect(holding).toContain(join(setup.rootDir, "sandboxes", id));
        }

        // Copy-on-write RAM (fork-ram.ts): the forks map one copy of the source's RAM, so a fork
        // holds privately only what it wrote since; loaded from the stream, every page the state
        // carried would be its own.
        for (const fork of [a, b]) {
          const [pid] = await qemusUnder(join(setup.rootDir, "vms", fork.sandboxId));
          const sharing = await guestRamSharing(pid ?? 0);
          // Measured: about 5 MiB copied with shared RAM, about 145 MiB loaded from the stream.
          expect(sharing.copiedKb).toBeLessThan(SHARED_RAM_COPIED_KB);
          expect(sharing.sharedKb).toBeGreaterThan(sharing.copiedKb);
        }
        // Nothing of the move is left: neither its file nor its state.
        expect(
          (await readdir(join(setup.rootDir, "sandboxes", "fork-src"))).filter((name) =>
            name.startsWith("fork-"),
          ),
        ).toEqual([]);

        for (const handle of [source, a, b]) {
          expect(await driver.isAlive(handle)).toBe(true);
          const conn = await driver.connect(handle);
          expect(await readText(conn, "before.txt")).toBe("written before the fork");
          conn.close();
        }
        expect(await run(driver, a, "echo $WHO")).toBe("a\n");
        expect(await run(driver, b, "echo $WHO")).toBe("b\n");
        expect(await run(driver, source, "echo $WHO")).toBe("source\n");

        // Writes after the fork: each its own, none seen by the others.
        await run(driver, source, "echo s > /root/after.txt; sync");
        await run(driver, a, "echo a > /root/after.txt; sync");
        expect(await run(driver, b, "cat /root/after.txt 2>/dev/null || echo none")).toBe("none\n");
        expect(await run(driver, a, "cat /root/after.txt")).toBe("a\n");
        // A fork restored over the shared RAM hibernates and resumes like any sandbox (its saved
        // state carries all its RAM, the shared file is long gone).
        await driver.hibernate(a);
        await driver.resume(a);
        expect(await run(driver, a, "cat /root/after.txt /root/before.txt")).toBe(
          "a\nwritten before the fork",
        );
        expect(await run(driver, source, "cat /root/after.txt")).toBe("s\n");

        // Each fork draws its own random numbers (the guest's generator was reseeded).
        const draws = await Promise.all(
          [a, b].map((handle) => run(driver, handle, "head -c 16 /dev/urandom | od -An -tx1")),
        );
        expect(draws[0]).not.toBe(draws[1]);

        // The source survives a second fork and a hibernate/resume on its new disk layer.
        await driver.hibernate(source);
        await driver.resume(source);
        expect(await run(driver, source, "cat /root/after.txt /root/before.txt")).toBe(
          "s\nwritten before the fork",
        );

        // Destroying the source first leaves the forks working (the shared layer stays theirs).
        await driver.destroy(source);
        expect(await run(driver, a, "cat /root/before.txt")).toBe("written before the fork");
        for (const handle of [a, b]) await driver.destroy(handle);
        expect(await qemusUnder(setup.rootDir)).toEqual([]);
        expect(await entries(join(setup.rootDir, "layers"))).toEqual([]);
        // Gone with them: only the driver's own guest (kernel, initramfs) stays kept.
        const left = [...(await driver.cacheReferences())].map((name) => name.replace(/-.*/, ""));
        expect(left.sort()).toEqual(["initramfs", "kernel"]);
        expect(await entries(join(setup.rootDir, "vms"))).toEqual([]);
      },
      TIMEOUT,
    );

    it(
      "forks a hibernated source; its forks run and the source resumes",
      async () => {
        const { driver } = setup;
        const source = await driver.create(spec("hib-src", image, { WHO: "source" }));
        await run(driver, source, "echo kept > /root/kept.txt; sync");
        await driver.hibernate(source);
        const [fork] = (await driver.fork(source, [spec("hib-a", image, { WHO: "a" })])) as [SandboxHandle];
        // Its RAM moved into a shared file as for a running source: the fork holds little of its own.
        const [pid] = await qemusUnder(join(setup.rootDir, "vms", "hib-a"));
        const sharing = await guestRamSharing(pid ?? 0);
        // Measured: about 52 MiB copied (this guest writes more after a resume), 145 MiB without.
        expect(sharing.copiedKb).toBeLessThan(SHARED_RAM_COPIED_KB);
        expect(await run(driver, fork, "cat /root/kept.txt; echo $WHO")).toBe("kept\na\n");
        await driver.resume(source);
        expect(await run(driver, source, "cat /root/kept.txt; echo $WHO")).toBe("kept\nsource\n");
        for (const handle of [source, fork]) await driver.destroy(handle);
        expect(await qemusUnder(setup.rootDir)).toEqual([]);
        expect(await entries(join(setup.rootDir, "layers"))).toEqual([]);
      },
      TIMEOUT,
    );

    it(
      "a taken id refuses the whole fork before anything starts",
      async () => {
        const { driver } = setup;
        const source = await driver.create(spec("dup-src", image));
        try {
          await expect(
            driver.fork(source, [spec("dup-new", image), spec("dup-src", image)]),
          ).rejects.toMatchObject({ code: "conflict" });
          expect(await entries(join(setup.rootDir, "sandboxes"))).toEqual(["dup-src"]);
          // Another image (another root disk) cannot be a fork of this one.
          const other: SandboxImage = { ...image, digest: "sha256:another" };
          await expect(driver.fork(source, [spec("dup-other", other)])).rejects.toMatchObject({
            code: "invalid_request",
          });
          expect(await entries(join(setup.rootDir, "sandboxes"))).toEqual(["dup-src"]);
          expect(await run(driver, source, "echo alive")).toBe("alive\n");
        } finally {
          await driver.destroy(source);
        }
      },
      TIMEOUT,
    );

    it(
      "destroying the source mid-fork leaves no QEMU, disk or layer behind",
      async () => {
        const { driver } = setup;
        const source = await driver.create(spec("mid-src", image));
        const sourceDir = join(setup.rootDir, "sandboxes", "mid-src");
        // The source is destroyed as soon as its state starts being saved.
        const saving = appears(sourceDir, (name) => name.startsWith("fork-") && name.endsWith(".state"));
        const forking = driver.fork(source, [spec("mid-a", image), spec("mid-b", image)]);
        forking.catch(() => undefined);
        await saving;
        await driver.destroy(source);
        await expect(forking).rejects.toThrow();
        await expectNothingLeft(setup.rootDir);
      },
      TIMEOUT,
    );

    it(
      "destroying the source while its RAM moves to a file leaves no QEMU, file or layer behind",
      async () => {
        const { driver } = setup;
        const source = await driver.create(spec("ram-src", image));
        const sourceDir = join(setup.rootDir, "sandboxes", "ram-src");
        // fork-ram.ts's QEMU loads the saved state into a RAM file in the source's directory.
        const moving = appears(sourceDir, (name) => name.startsWith("fork-ram-"));
        const forking = driver.fork(source, [spec("ram-a", image)]);
        forking.catch(() => undefined);
        await moving;
        await driver.destroy(source);
        // Whether the move had finished decides if the fork stands; either way nothing leaks.
        for (const fork of await forking.catch(() => [])) await driver.destroy(fork);
        await expectNothingLeft(setup.rootDir);
      },
      TIMEOUT,
    );

    it(
      "destroying a fork while it restores fails the whole fork and leaves only the source",
      async () => {
        const { driver } = setup;
        const source = await driver.create(spec("res-src", image));
        try {
          const vms = join(setup.rootDir, "vms");
          // The fork's QEMU is up (its control socket exists) and the state streams in.
          const restoring = new Promise<void>((resolve) => {
            const watcher = watch(vms, async (_event, name) => {
              if (name !== "res-b") return;
              watcher.close();
              await appears(join(vms, "res-b"), (file) => file === "qmp.sock");
              resolve();
            });
          });
          const forking = driver.fork(source, [spec("res-a", image), spec("res-b", image)]);
          forking.catch(() => undefined);
          await restoring;
          await driver.destroy({ sandboxId: "res-b", driver: "microvm", data: {} });
          await expect(forking).rejects.toThrow();
          expect(await entries(join(setup.rootDir, "sandboxes"))).toEqual(["res-src"]);
          expect(await entries(vms)).toEqual(["res-src"]);
          expect((await qemusUnder(setup.rootDir)).length).toBe(1);
          expect(await run(driver, source, "echo alive")).toBe("alive\n");
        } finally {
          await driver.destroy(source);
        }
        expect(await qemusUnder(setup.rootDir)).toEqual([]);
        expect(await entries(join(setup.rootDir, "layers"))).toEqual([]);
      },
      TIMEOUT,
    );
  });
}
