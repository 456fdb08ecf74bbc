/** The drivers this build of Polydev ships, by the name `POLYDEV_DRIVER` selects. */
import { PolydevError } from "@polydev/core";
import { GvisorDriver } from "@polydev/driver-gvisor";
import { MicrovmDriver } from "@polydev/driver-microvm";
import { NamespaceDriver } from "@polydev/driver-namespace";
import type { DriverFactory } from "@polydev/server";

/** Driver settings an operator sets in the environment (read here, at the entry point, only). */
export interface DriverSettings {
  /**
   * Let the namespace driver remount the host's cgroup2 hierarchy with `favordynmods` (faster
   * creates, slightly dearer forks host-wide). Env POLYDEV_TUNE_HOST_CGROUPS; default true.
   */
  tuneHostCgroups: boolean;
}

export function driverSettingsFromEnv(env: NodeJS.ProcessEnv): DriverSettings {
  const tune = env.POLYDEV_TUNE_HOST_CGROUPS?.trim().toLowerCase();
  if (tune !== undefined && tune !== "" && !["true", "false", "1", "0"].includes(tune)) {
    throw new PolydevError(
      "invalid_request",
      `POLYDEV_TUNE_HOST_CGROUPS must be true or false (got "${env.POLYDEV_TUNE_HOST_CGROUPS}")`,
    );
  }
  return { tuneHostCgroups: tune !== "false" && tune !== "0" };
}

export function driversFor(settings: DriverSettings): Record<string, DriverFactory> {
  return Object.freeze({
    namespace: ({ rootDir, hostUidRegistryDir, log, storage, toolbox }) =>
      new NamespaceDriver({
        rootDir,
        hostUidRegistryDir,
        log,
        tuneHostCgroups: settings.tuneHostCgroups,
        ...(storage === undefined ? {} : { storage }),
        ...(toolbox === undefined ? {} : { toolboxDir: toolbox }),
      }),
    // gVisor (Debian's runsc): a user-space kernel between the sandbox and the host's. Starts
    // sandboxes from the image store only, so it needs images on (the toolbox comes with them).
    gvisor: ({ rootDir, toolbox }) => {
      if (toolbox === undefined) {
        throw new PolydevError(
          "driver_unavailable",
          "the gvisor driver starts sandboxes from images: turn images on (POLYDEV_IMAGES=on) to run it",
        );
      }
      return new GvisorDriver({ rootDir, toolboxDir: toolbox });
    },
    // A virtual machine per sandbox (QEMU's microvm machine; TCG unless KVM is set up for it),
    // restored from its image's boot snapshot. Also starts from the image store only.
    microvm: ({ rootDir, toolbox }) => {
      if (toolbox === undefined) {
        throw new PolydevError(
          "driver_unavailable",
          "the microvm driver starts sandboxes from images: turn images on (POLYDEV_IMAGES=on) to run it",
        );
      }
      return new MicrovmDriver({ rootDir, toolboxDir: toolbox });
    },
  });
}

/** The drivers with their defaults. */
export const DRIVERS: Record<string, DriverFactory> = driversFor({ tuneHostCgroups: true });
