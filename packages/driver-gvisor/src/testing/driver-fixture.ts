/**
 * What the gVisor driver's own test files set up alike: the base image's root and the toolbox,
 * a private root directory and cgroup parent, a factory for driver instances on that root (a
 * second instance stands for a restarted server), and sandbox specs. Registers its own
 * beforeAll/afterAll, so it is called inside a describe; afterAll destroys what is left.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxImage, SandboxSpec } from "@polydev/core";
import { BASE_IMAGE_ENV } from "@polydev/images";
import { testBaseRootfs, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll } from "vitest";
import { GvisorDriver } from "../gvisor-driver.js";
import { removeCgroupParent } from "./cgroup-parent.js";

export interface GvisorFixture {
  /** A new driver instance on the fixture's root. */
  driver(): GvisorDriver;
  /** A small sandbox; runsc names control sockets by id host-wide, so ids carry the pid. */
  spec(name: string, extra?: Partial<SandboxSpec>): SandboxSpec;
  image(): SandboxImage;
}

export function useGvisorFixture(label: string): GvisorFixture {
  let rootDir = "";
  let toolbox = "";
  let image: SandboxImage | undefined;
  const cgroupParent = `polydev-gvisor-${label}-${process.pid}`;
  const fixture: GvisorFixture = {
    driver: () => new GvisorDriver({ rootDir, toolboxDir: toolbox, cgroupParent }),
    image: () => {
      if (image === undefined) throw new Error("the gVisor fixture is used before its beforeAll ran");
      return image;
    },
    spec: (name, extra = {}) => ({
      id: `${label}-${process.pid}-${name}`,
      limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
      network: "none",
      env: {},
      image: fixture.image(),
      ...extra,
    }),
  };
  beforeAll(async () => {
    const [rootfs, toolboxDir] = await Promise.all([testBaseRootfs(), testToolbox()]);
    toolbox = toolboxDir;
    image = { name: "polydev/base", digest: "sha256:test", layers: [rootfs], env: { ...BASE_IMAGE_ENV } };
    rootDir = await mkdtemp(join(tmpdir(), `polydev-gvisor-${label}-`));
  });
  afterAll(async () => {
    const cleaner = fixture.driver();
    for (const sandbox of await cleaner.list()) await cleaner.destroy(sandbox.handle).catch(() => undefined);
    await rm(rootDir, { recursive: true, force: true });
    await removeCgroupParent(cgroupParent);
  });
  return fixture;
}
