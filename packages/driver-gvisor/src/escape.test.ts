/**
 * The escape-probe suite on gvisor sandboxes of the default image, as its own user with sudo
 * at hand: whatever root in the Sentry can do must still reach nothing outside.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runEscapeProbes } from "@polydev/core/testing";
import { BASE_IMAGE_ENV } from "@polydev/images";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { describe, it } from "vitest";
import { GvisorDriver } from "./gvisor-driver.js";
import { removeCgroupParent } from "./testing/cgroup-parent.js";

const unavailable =
  testImagesUnavailable() ??
  (existsSync("/usr/bin/runsc") ? null : "runsc is not installed (apt-get install runsc)");

if (unavailable !== null) {
  describe("escape probes: gvisor", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const [rootfs, toolbox] = await Promise.all([testBaseRootfs(), testToolbox()]);
  /**
   * Probes whose premise is the host kernel answering the call: under gVisor the Sentry answers
   * it from its own emulation, so what they see let through never reaches the host kernel.
   * Listed one by one so each gap stays visible.
   */
  const servedBySentry = {
    "devices.mknod":
      "mknod is served by gVisor's Sentry in its own file system: a node it makes opens only the Sentry's emulated devices, never a host device",
    "devices.nested-user-namespace":
      "user namespaces are the Sentry's own (the agent already runs in one); no capability they hand out is a host kernel capability",
    "syscalls.io-uring":
      "io_uring_setup is answered by the Sentry's own io_uring emulation, not the host kernel's",
    "syscalls.host-clock-reboot-swap":
      "syslog(READ) is answered by the Sentry with its own made-up boot messages, never the host's kernel log (clock, reboot, swap and acct fail)",
    "kernel.dmesg":
      "syslog(READ) is answered by the Sentry with its own made-up boot messages, never the host's kernel log",
  } as const;
  runEscapeProbes(
    "gvisor",
    async () => {
      const rootDir = await mkdtemp(join(tmpdir(), "polydev-gvisor-escape-"));
      const cgroupParent = `polydev-gvisor-escape-${process.pid}`;
      const driver = new GvisorDriver({
        rootDir,
        toolboxDir: toolbox,
        cgroupParent,
      });
      await driver.probe();
      return {
        driver,
        hostSecretPaths: [rootDir],
        hostStateDirs: [join(rootDir, "sandboxes"), join(rootDir, "runsc")],
        cleanup: async () => {
          for (const sandbox of await driver.list())
            await driver.destroy(sandbox.handle).catch(() => undefined);
          await rm(rootDir, { recursive: true, force: true });
          await removeCgroupParent(cgroupParent);
        },
      };
    },
    {
      image: {
        name: "polydev/base",
        digest: "sha256:test",
        layers: [rootfs],
        env: { ...BASE_IMAGE_ENV },
        user: "user",
      },
      skip: {
        ...servedBySentry,
        "limits.memory-hog":
          "Debian's runsc (20221219) has no OOM killer of its own: a guest past its memory limit gets the host cgroup's OOM kill, which ends the whole Sentry (only that sandbox)",
        "descriptors.background":
          "a background command's stdout is a file in the agent's own state directory inside the sandbox, whose 0700 directories (made by @polydev/agent) the probe, as the image's user, cannot look into",
      },
    },
  );
}
