/**
 * What images need on this host, opened at start-up: the storage pool (layers and disks) and
 * the toolbox mounted at /opt/polydev in every image sandbox. Both are optional: a host that
 * cannot have them (not root, no xfsprogs) runs host-view sandboxes and says why in the log.
 * The pool stays mounted when the server stops: its sandboxes outlive the server, as their
 * processes do, and the next start finds it mounted.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  baseImageEntryName,
  buildEnvironmentFrom,
  ensureBaseRootfs,
  ensureToolbox,
  StoragePool,
  toolboxEntryName,
} from "@polydev/images";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";

export interface HostImages {
  pool: StoragePool;
  /** The toolbox directory once it is built (in the background at start-up). */
  toolbox(): string | undefined;
  /** Builds (or finds cached) the default image's root file system. */
  buildBase(onProgress: (line: string) => void): Promise<string>;
  /** Whether the default image's root file system is built already (the setup step builds it). */
  baseCached: boolean;
}

const GiB = 2 ** 30;

export async function openHostImages(config: PolydevConfig, log: Logger): Promise<HostImages | undefined> {
  if (!config.images.enabled) return undefined;
  const missing = hostCannotHaveImages();
  if (missing !== undefined) {
    log.warn({ reason: missing }, "images are off: sandboxes are host views (no root, no durable disks)");
    return undefined;
  }
  const pool = new StoragePool({
    mountPoint: join(config.dataDir, "storage"),
    imageFile: join(config.dataDir, "storage.xfs"),
    ...(config.images.poolSizeGb === undefined ? {} : { sizeBytes: config.images.poolSizeGb * GiB }),
    log,
  });
  try {
    await pool.open();
  } catch (error) {
    log.warn({ err: error }, "images are off: the storage pool could not be opened");
    return undefined;
  }
  // Only what npm and apt need to reach their registries (proxy, CA): nothing else of ours.
  const env = buildEnvironmentFrom(process.env);
  let toolboxDir: string | undefined;
  const toolbox = ensureToolbox(config.images.cacheDir, { env })
    .then((dir) => {
      toolboxDir = dir;
      log.info({ dir }, "the toolbox (/opt/polydev: node and the agent CLIs) is ready");
    })
    .catch((error: unknown) => {
      log.warn({ err: error }, "the toolbox could not be built: image sandboxes lack /opt/polydev");
    });
  // Built by the setup step: waited for, so that no sandbox starts without it. Otherwise it is
  // built in the background and sandboxes started meanwhile lack /opt/polydev.
  if (existsSync(join(config.images.cacheDir, await toolboxEntryName()))) await toolbox;
  return {
    pool,
    toolbox: () => toolboxDir,
    buildBase: (onProgress) => ensureBaseRootfs(config.images.cacheDir, { onProgress, env }),
    baseCached: existsSync(join(config.images.cacheDir, baseImageEntryName())),
  };
}

function hostCannotHaveImages(): string | undefined {
  if (process.getuid?.() !== 0) return "the server is not root (the pool is a loop-mounted file system)";
  for (const [tool, pkg] of [
    ["/usr/sbin/mkfs.xfs", "xfsprogs"],
    ["/usr/sbin/mkfs.ext4", "e2fsprogs"],
    ["/usr/sbin/losetup", "mount"],
  ] as const) {
    if (!existsSync(tool)) return `${tool} is missing (apt-get install ${pkg})`;
  }
  return undefined;
}
