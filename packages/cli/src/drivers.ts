/**
 * The drivers this build of Polydev ships, by the name `POLYDEV_DRIVER` / `POLYDEV_DRIVERS`
 * select, each with its own settings schema (POLYDEV_DRIVER_<NAME>_<SETTING>). A new driver is
 * one more entry here; the server takes them as given.
 */
import { PolydevError } from "@polydev/core";
import { GvisorDriver, gvisorDriverSettings } from "@polydev/driver-gvisor";
import { MicrovmDriver, microvmDriverSettings } from "@polydev/driver-microvm";
import { NamespaceDriver, namespaceDriverSettings } from "@polydev/driver-namespace";
import type { DriverFactory } from "@polydev/server";
import { defineDriver } from "@polydev/server";

export const DRIVERS: Record<string, DriverFactory> = Object.freeze({
  namespace: defineDriver({
    settings: namespaceDriverSettings,
    create: ({ rootDir, hostUidRegistryDir, log, storage, toolbox }, settings) =>
      new NamespaceDriver({
        rootDir,
        hostUidRegistryDir,
        log,
        tuneHostCgroups: settings.tuneHostCgroups,
        ...(storage === undefined ? {} : { storage }),
        ...(toolbox === undefined ? {} : { toolboxDir: toolbox }),
      }),
  }),
  // gVisor (Debian's runsc): a user-space kernel between the sandbox and the host's. Starts
  // sandboxes from the image store only, so it needs images on (the toolbox comes with them).
  gvisor: defineDriver({
    settings: gvisorDriverSettings,
    create: ({ rootDir, toolbox }, settings) => {
      if (toolbox === undefined) {
        throw new PolydevError(
          "driver_unavailable",
          "the gvisor driver starts sandboxes from images: turn images on (POLYDEV_IMAGES=on) to run it",
        );
      }
      return new GvisorDriver({
        rootDir,
        toolboxDir: toolbox,
        platform: settings.platform,
        ...(settings.runscPath === undefined ? {} : { runscPath: settings.runscPath }),
        ...(settings.memoryOverheadMb === undefined ? {} : { memoryOverheadMb: settings.memoryOverheadMb }),
        ...(settings.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: settings.readyTimeoutMs }),
      });
    },
  }),
  // A virtual machine per sandbox (QEMU's microvm machine; TCG unless the operator sets KVM),
  // restored from its image's boot snapshot. Also starts from the image store only.
  microvm: defineDriver({
    settings: microvmDriverSettings,
    create: ({ rootDir, toolbox }, settings) => {
      if (toolbox === undefined) {
        throw new PolydevError(
          "driver_unavailable",
          "the microvm driver starts sandboxes from images: turn images on (POLYDEV_IMAGES=on) to run it",
        );
      }
      return new MicrovmDriver({
        rootDir,
        toolboxDir: toolbox,
        accel: settings.accel,
        ...(settings.cacheDir === undefined ? {} : { cacheDir: settings.cacheDir }),
        ...(settings.bootTimeoutMs === undefined ? {} : { bootTimeoutMs: settings.bootTimeoutMs }),
        ...(settings.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: settings.readyTimeoutMs }),
        ...(settings.cacheMaxMb === undefined ? {} : { cacheMaxBytes: settings.cacheMaxMb * 1024 * 1024 }),
      });
    },
  }),
} satisfies Record<string, DriverFactory>);
