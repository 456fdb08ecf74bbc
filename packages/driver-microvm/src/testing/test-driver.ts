/**
 * What every microvm test file shares: the host cache of kernels, disks and boot snapshots
 * (/var/cache/polydev/microvm, keyed by inputs, so the template boots once per host and image),
 * the default image and the toolbox, and why the driver cannot run here when it cannot.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxImage } from "@polydev/core";
import { BASE_IMAGE_ENV } from "@polydev/images";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { removeHostCgroupParent } from "../host-cgroup.js";
import { MicrovmDriver } from "../microvm-driver.js";

export function microvmUnavailable(): string | null {
  return (
    testImagesUnavailable() ??
    (existsSync("/usr/bin/qemu-system-x86_64")
      ? existsSync("/bin/busybox")
        ? null
        : "busybox-static is not installed (scripts/ensure.sh installs it)"
      : "QEMU is not installed (apt-get install qemu-system-x86 qemu-utils; scripts/ensure.sh does)")
  );
}

export async function testImage(user?: string): Promise<SandboxImage> {
  const rootfs = await testBaseRootfs();
  return {
    name: "polydev/base",
    digest: "sha256:test",
    layers: [rootfs],
    env: { ...BASE_IMAGE_ENV },
    ...(user ? { user } : {}),
  };
}

export interface TestDriver {
  driver: MicrovmDriver;
  rootDir: string;
  cleanup(): Promise<void>;
}

export async function testDriver(label: string): Promise<TestDriver> {
  const toolbox = await testToolbox();
  const rootDir = await mkdtemp(join(tmpdir(), `polydev-microvm-${label}-`));
  const cgroupParent = `polydev-microvm-${label}-${process.pid}`;
  const driver = new MicrovmDriver({ rootDir, toolboxDir: toolbox, cgroupParent });
  await driver.probe();
  return {
    driver,
    rootDir,
    cleanup: async () => {
      for (const sandbox of await driver.list()) await driver.destroy(sandbox.handle).catch(() => undefined);
      await rm(rootDir, { recursive: true, force: true });
      await removeHostCgroupParent(cgroupParent);
    },
  };
}
