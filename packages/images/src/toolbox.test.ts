import { execFile } from "node:child_process";
import { lstat, mkdir, mkdtemp, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import {
  runInRootfs,
  TEST_IMAGE_CACHE_DIR,
  testBaseRootfs,
  testImagesUnavailable,
  testToolbox,
} from "./testing/image-cache.js";
import { TOOLBOX_CLI_PACKAGES, TOOLBOX_MOUNT, toolboxEntryName } from "./toolbox.js";

const run = promisify(execFile);
const unavailable = testImagesUnavailable();
const SKIP = unavailable === null ? "" : ` (skipped: ${unavailable})`;
/** npm installs ~900 MB of CLIs and Node; the base image may be built first: minutes, once per host. */
const BUILD_TIMEOUT_MS = 40 * 60_000;

describe("the toolbox's pinned CLIs", () => {
  it("are the versions scripts/ensure.sh installs on the host", async () => {
    const ensure = await readFile(new URL("../../../scripts/ensure.sh", import.meta.url), "utf8");
    const line = /^CLI_PACKAGES="([^"]+)"$/m.exec(ensure);
    expect(line?.[1]?.split(" ")).toEqual([...TOOLBOX_CLI_PACKAGES]);
  });
});

describe(`the toolbox mounted at /opt/polydev${SKIP}`, () => {
  let rootfs = "";
  let toolbox = "";

  beforeAll(async () => {
    if (unavailable !== null) return;
    const started = Date.now();
    rootfs = await testBaseRootfs();
    const baseDone = Date.now();
    toolbox = await testToolbox();
    console.info(
      `toolbox at ${toolbox}: ${Math.round((Date.now() - baseDone) / 1000)} s (base image ${Math.round((baseDone - started) / 1000)} s)`,
    );
  }, BUILD_TIMEOUT_MS);

  it.skipIf(unavailable !== null)(
    "runs its own node and the CLIs inside the default image, not the host's",
    async () => {
      expect(toolbox).toBe(join(TEST_IMAGE_CACHE_DIR, await toolboxEntryName()));
      // The base image has no node at all: whatever runs is the toolbox's.
      await expect(lstat(join(rootfs, "usr/bin/node"))).rejects.toThrow();
      const { stdout: out } = await runInRootfs(
        rootfs,
        [
          "/bin/sh",
          "-c",
          [
            "set -e",
            "/opt/polydev/bin/node -e 'console.log(\"node\", process.version, process.execPath)'",
            '/opt/polydev/bin/node -e \'console.log("user", require("os").userInfo().username)\'',
            "echo claude $(/opt/polydev/bin/claude --version)",
            "echo codex $(/opt/polydev/bin/codex --version)",
            "echo gemini $(/opt/polydev/bin/gemini --version)",
            // The loader that ran node is the toolbox's, not the image's.
            '/opt/polydev/bin/node -e \'console.log("maps", require("fs").readFileSync("/proc/self/maps", "utf8").includes("/opt/polydev/lib/runtime/libc.so.6"))\'',
          ].join("\n"),
        ],
        { toolbox },
      );
      expect(out).toMatch(/^node v2[0-9]\.\d+\.\d+ \/opt\/polydev\/bin\/node$/m);
      expect(out).toMatch(/^user root$/m);
      expect(out).toMatch(/^claude 2\.1\.197/m);
      expect(out).toMatch(/^codex codex-cli 0\.169\.0$/m);
      expect(out).toMatch(/^gemini 0\.61\.0$/m);
      expect(out).toMatch(/^maps true$/m);
    },
  );

  it.skipIf(unavailable !== null)(
    "runs node in a root file system that has no C library at all",
    async () => {
      const empty = await mkdtemp(join(tmpdir(), "polydev-no-libc-"));
      try {
        await mkdir(join(empty, "opt/polydev"), { recursive: true });
        await mkdir(join(empty, "tmp"), { recursive: true });
        // Nothing but the mount point and /tmp: no loader, no libc, no shell.
        const mountPoint = join(empty, TOOLBOX_MOUNT);
        const { stdout } = await run(
          "/usr/bin/unshare",
          [
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            'mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && exec /usr/sbin/chroot "$3" /opt/polydev/bin/node -e "console.log(1 + 1)"',
            "sh",
            toolbox,
            mountPoint,
            empty,
          ],
          { timeout: 60_000, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
        );
        expect(stdout.trim()).toBe("2");
      } finally {
        await rm(empty, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(unavailable !== null)("is owned by root with nothing setuid or writable by others", async () => {
    const { stdout } = await run("/usr/bin/find", [
      toolbox,
      "(",
      "!",
      "-uid",
      "0",
      "-o",
      "-perm",
      "/6022",
      ")",
      "!",
      "-type",
      "l",
    ]);
    expect(stdout).toBe("");
    expect(await readlink(join(toolbox, "bin/claude"))).toBe(
      "../lib/agent-clis/node_modules/@anthropic-ai/claude-code/bin/claude.exe",
    );
    expect((await readFile(join(toolbox, "bin/codex"), "utf8")).split("\n")[0]).toBe(
      "#!/opt/polydev/bin/node",
    );
  });
});
