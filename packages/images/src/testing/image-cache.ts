import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { baseImageEntryName, ensureBaseRootfs } from "../base-image.js";
import { removeBuildDirectory } from "../build-process.js";
import { ensureToolbox, toolboxEntryName } from "../toolbox.js";

/**
 * Where tests keep the images they build: one host-wide cache keyed by the images' inputs, so the
 * default image and the toolbox are built once per host (once per CI run) and every test file
 * shares them. Other processes building the same key wait on its lock file.
 */
export const TEST_IMAGE_CACHE_DIR = "/var/cache/polydev/test-images";

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
  const dir = await ensureBaseRootfs(TEST_IMAGE_CACHE_DIR, { onProgress });
  await pruneOtherKeys("base-", baseImageEntryName());
  return dir;
}

/** The toolbox directory (mounted at /opt/polydev in sandboxes), built on first use. */
export async function testToolbox(onProgress?: (line: string) => void): Promise<string> {
  const dir = await ensureToolbox(TEST_IMAGE_CACHE_DIR, { onProgress });
  await pruneOtherKeys("toolbox-", await toolboxEntryName());
  return dir;
}
