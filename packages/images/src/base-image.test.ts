import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { isPolydevError } from "@polydev/core";
import { beforeAll, describe, expect, it } from "vitest";
import { BASE_IMAGE_NAME, baseImageEntryName, baseImageKey, buildBaseRootfs } from "./base-image.js";
import {
  runInRootfs,
  TEST_IMAGE_CACHE_DIR,
  testBaseRootfs,
  testImagesUnavailable,
} from "./testing/image-cache.js";

const run = promisify(execFile);
const unavailable = testImagesUnavailable();
const SKIP = unavailable === null ? "" : ` (skipped: ${unavailable})`;
/** mmdebstrap downloads and installs ~250 packages: minutes, once per host. */
const BUILD_TIMEOUT_MS = 40 * 60_000;

describe("baseImageKey", () => {
  it("is stable for the same inputs and changes with the mirror", () => {
    expect(BASE_IMAGE_NAME).toBe("polydev/base");
    expect(baseImageKey()).toBe(baseImageKey({}));
    expect(baseImageKey()).toMatch(/^[0-9a-f]{32}$/);
    expect(baseImageKey({ mirror: "http://mirror.example/debian" })).not.toBe(baseImageKey());
    expect(baseImageEntryName()).toBe(`base-${baseImageKey()}`);
  });

  it("refuses a mirror that is not an http(s) or file URL", () => {
    for (const mirror of ["ftp://x/debian", "http://x/debian bookworm main\ndeb http://evil", "-v"]) {
      let caught: unknown;
      try {
        baseImageKey({ mirror });
      } catch (error) {
        caught = error;
      }
      expect(isPolydevError(caught) && caught.code === "invalid_request").toBe(true);
    }
  });
});

/** The processes whose command line mentions `text` (a build's unique partial directory). */
async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8");
      if (cmdline.includes(text)) found.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

describe(`the default image, built with mmdebstrap${SKIP}`, () => {
  let rootfs = "";
  let progressLines = 0;
  let buildMs = 0;

  beforeAll(async () => {
    if (unavailable !== null) return;
    const started = Date.now();
    rootfs = await testBaseRootfs(() => {
      progressLines += 1;
    });
    buildMs = Date.now() - started;
    // Said once, so a slow first run is explained in the log.
    console.info(`base image at ${rootfs}: ${progressLines} progress lines, ${Math.round(buildMs / 1000)} s`);
  }, BUILD_TIMEOUT_MS);

  it.skipIf(unavailable !== null)(
    "is a real Debian machine: user, passwordless sudo, venv and pip, jq, gcc, git",
    async () => {
      expect(rootfs).toBe(join(TEST_IMAGE_CACHE_DIR, baseImageEntryName()));
      const script = [
        "set -e",
        "id user",
        "sudo -n -u user true",
        "sudo -n -u user sudo -n true",
        "python3 -m venv /tmp/v && /tmp/v/bin/pip --version",
        "jq --version",
        "gcc --version",
        "git --version",
        "curl --version",
      ].join("\n");
      const { stdout, stderr } = await runInRootfs(rootfs, ["sh", "-c", script]);
      // /etc/hosts names the hostname the driver gives a sandbox, so sudo resolves it.
      expect(stderr).not.toContain("unable to resolve host");
      expect(stdout).toContain("uid=1000(user) gid=1000(user) groups=1000(user),27(sudo)");
      expect(stdout).toMatch(/pip \d+/);
      expect(stdout).toMatch(/jq-1\.\d/);
      expect(stdout).toMatch(/gcc .*12\./);
      expect(stdout).toMatch(/git version 2\./);
      expect(await readFile(join(rootfs, "etc/debian_version"), "utf8")).toMatch(/^12\./);
    },
  );

  it.skipIf(unavailable !== null)(
    "keeps the image's own owners and a 0440 sudoers file, and no device nodes",
    async () => {
      const home = await stat(join(rootfs, "home/user"));
      expect([home.uid, home.gid]).toEqual([1000, 1000]);
      const bashrc = await stat(join(rootfs, "home/user/.bashrc"));
      expect(bashrc.uid).toBe(1000);
      const sudoers = await stat(join(rootfs, "etc/sudoers.d/polydev-user"));
      expect(sudoers.mode & 0o7777).toBe(0o440);
      expect([sudoers.uid, sudoers.gid]).toEqual([0, 0]);
      expect(await readFile(join(rootfs, "etc/sudoers.d/polydev-user"), "utf8")).toBe(
        "user ALL=(ALL:ALL) NOPASSWD: ALL\n",
      );
      const sudo = await stat(join(rootfs, "usr/bin/sudo"));
      expect([sudo.uid, sudo.mode & 0o4000]).toEqual([0, 0o4000]);
      expect(await readFile(join(rootfs, "etc/hostname"), "utf8")).toBe("polydev\n");
      for (const file of ["etc/hostname", "etc/hosts", "etc/resolv.conf"]) {
        expect((await stat(join(rootfs, file))).mode & 0o7777).toBe(0o644);
      }
      expect(await readFile(join(rootfs, "etc/hosts"), "utf8")).toContain("127.0.0.1\tlocalhost");
      expect((await stat(join(rootfs, "opt/polydev"))).isDirectory()).toBe(true);
      const passwd = await readFile(join(rootfs, "etc/passwd"), "utf8");
      expect(passwd).toContain("user:x:1000:1000::/home/user:/bin/bash");
      const { stdout: devices } = await run("/usr/bin/find", [
        rootfs,
        "-xdev",
        "(",
        "-type",
        "b",
        "-o",
        "-type",
        "c",
        ")",
      ]);
      expect(devices).toBe("");
      // Package lists are left out, as in Debian's container images: `apt-get update` comes first.
      const lists = (await readdir(join(rootfs, "var/lib/apt/lists"))).filter((name) =>
        name.endsWith("_Packages"),
      );
      expect(lists).toEqual([]);
      expect(await readlink(join(rootfs, "bin"))).toBe("usr/bin");
      const leftovers = (await readdir(TEST_IMAGE_CACHE_DIR)).filter((name) =>
        name.startsWith(`${baseImageEntryName()}.partial-`),
      );
      expect(leftovers).toEqual([]);
      const cache = await stat(TEST_IMAGE_CACHE_DIR);
      expect(cache.mode & 0o077).toBe(0);
    },
  );

  it.skipIf(unavailable !== null)(
    "an abort kills the build and leaves neither the target nor a partial directory",
    async () => {
      const work = await mkdtemp(join(tmpdir(), "polydev-base-abort-"));
      try {
        const target = join(work, "base");
        const controller = new AbortController();
        let lines = 0;
        let partialSeen: string[] = [];
        const build = buildBaseRootfs(target, {
          signal: controller.signal,
          onProgress: () => {
            lines += 1;
            // Well into the build: mmdebstrap has made the partial tree and runs apt in it.
            if (lines === 5) {
              partialSeen = readdirSync(work);
              controller.abort(new Error("stop the build"));
            }
          },
        });
        await expect(build).rejects.toThrow("stop the build");
        expect(partialSeen.filter((name) => name.startsWith("base.partial-"))).toHaveLength(1);
        expect(await readdir(work)).toEqual([]);
        await expect(lstat(target)).rejects.toThrow();
        // The killed namespace's processes are reaped by the kernel, not at once.
        let left = await processesMentioning(`${target}.partial-`);
        for (let i = 0; i < 100 && left.length > 0; i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          left = await processesMentioning(`${target}.partial-`);
        }
        expect(left).toEqual([]);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
    120_000,
  );

  it.skipIf(unavailable !== null)("refuses a target that already exists", async () => {
    const work = await mkdtemp(join(tmpdir(), "polydev-base-exists-"));
    try {
      await expect(buildBaseRootfs(work)).rejects.toMatchObject({ code: "conflict" });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
