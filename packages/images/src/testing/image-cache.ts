import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { baseImageEntryName, ensureBaseRootfs } from "../base-image.js";
import { buildEnvironmentFrom, removeBuildDirectory } from "../build-process.js";
import { ensureToolbox, toolboxEntryName } from "../toolbox.js";

const run = promisify(execFile);

/**
 * Where tests find the images they need: the host-wide cache the server uses by default (config
 * images.cacheDir) and the setup step fills, keyed by the images' inputs, so the
 * default image and the toolbox are built once per host (once per CI run) and every test file
 * shares them. Other processes building the same key wait on its lock file.
 */
export const TEST_IMAGE_CACHE_DIR = "/var/cache/polydev/images";

/** Why the real base image and toolbox cannot be built here, or null when they can. */
export function testImagesUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root (mmdebstrap --mode=root, chroot, mounts)";
  for (const tool of ["/usr/bin/mmdebstrap", "/usr/bin/unshare", "/usr/bin/patchelf", "/usr/bin/flock"]) {
    if (!existsSync(tool)) return `${tool} is absent (scripts/ensure.sh installs it)`;
  }
  return null;
}

/** Removes cache entries of other keys with the same prefix (`base-`, `toolbox-`): old inputs. */
async function pruneOtherKeys(prefix: string, keep: string): Promise<void> {
  for (const name of await readdir(TEST_IMAGE_CACHE_DIR)) {
    if (!name.startsWith(prefix) || name.startsWith(keep)) continue;
    if (name.includes(".partial-") || name.endsWith(".lock")) continue;
    await removeBuildDirectory(join(TEST_IMAGE_CACHE_DIR, name));
  }
}

/** The default image's root directory, built on first use (minutes), shared by every test file. */
export async function testBaseRootfs(onProgress?: (line: string) => void): Promise<string> {
  const dir = await ensureBaseRootfs(TEST_IMAGE_CACHE_DIR, {
    onProgress,
    env: buildEnvironmentFrom(process.env),
  });
  await pruneOtherKeys("base-", baseImageEntryName());
  return dir;
}

/** The toolbox directory (mounted at /opt/polydev in sandboxes), built on first use. */
export async function testToolbox(onProgress?: (line: string) => void): Promise<string> {
  const dir = await ensureToolbox(TEST_IMAGE_CACHE_DIR, {
    onProgress,
    env: buildEnvironmentFrom(process.env),
  });
  await pruneOtherKeys("toolbox-", await toolboxEntryName());
  return dir;
}

export interface RunInRootfsOptions {
  /** Bound read-only at /opt/polydev, as the driver mounts the toolbox. */
  toolbox?: string;
  timeoutMs?: number;
}

/**
 * Runs `command` chrooted into `rootfs` (as host root) the way a sandbox would see it, without a
 * sandbox: in private mount, UTS and PID namespaces (its own /proc), hostname `polydev`, fresh
 * tmpfs on /tmp, /run, /root and /dev (the image has no device nodes; null, zero, full, random, urandom and tty are bound from the host), so
 * the shared cached image is never written. The environment is `env -i PATH=/usr/bin:/bin` (plus /opt/polydev/bin
 * first when a toolbox is mounted) and HOME=/root.
 */
export async function runInRootfs(
  rootfs: string,
  command: readonly string[],
  options: RunInRootfsOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  const script = [
    "set -e",
    'root="$1"; toolbox="$2"; shift 2',
    "hostname polydev",
    'for dir in tmp run dev; do mount -t tmpfs -o mode=0755 tmpfs "$root/$dir"; done',
    'chmod 1777 "$root/tmp"',
    'mount -t tmpfs -o mode=0700 tmpfs "$root/root"',
    // The devices bubblewrap's --dev gives a sandbox (Claude Code's runtime needs /dev/urandom).
    'for dev in null zero full random urandom tty; do touch "$root/dev/$dev" && mount --bind "/dev/$dev" "$root/dev/$dev"; done',
    'mount -t proc proc "$root/proc"',
    'if [ -n "$toolbox" ]; then mount --bind "$toolbox" "$root/opt/polydev" && mount -o remount,bind,ro "$root/opt/polydev"; fi',
    'exec /usr/sbin/chroot "$root" "$@"',
  ].join("\n");
  const path = options.toolbox === undefined ? "PATH=/usr/bin:/bin" : "PATH=/opt/polydev/bin:/usr/bin:/bin";
  const { stdout, stderr } = await run(
    "/usr/bin/unshare",
    [
      "--mount",
      "--uts",
      "--pid",
      "--fork",
      "--kill-child",
      "--propagation",
      "private",
      "--",
      "/bin/sh",
      "-c",
      script,
      "sh",
      rootfs,
      options.toolbox ?? "",
      "/usr/bin/env",
      "-i",
      path,
      "HOME=/root",
      ...command,
    ],
    { timeout: options.timeoutMs ?? 180_000, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
  );
  return { stdout, stderr };
}
