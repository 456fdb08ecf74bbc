/**
 * Each driver's own settings: read from POLYDEV_DRIVER_<NAME>_<SETTING>, validated by the schema
 * the driver registered before anything starts, and handed to its factory.
 */
import type { SandboxDriver } from "@polydev/core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { configFromEnv, parseConfig } from "../config.js";
import type { DriverFactory, DriverFactoryOptions } from "../server.js";
import { defineDriver } from "../server.js";
import { configuredDrivers } from "./open-drivers.js";

const OPTIONS: DriverFactoryOptions = {
  rootDir: "/unused",
  hostUidRegistryDir: "/unused",
  log: pino({ level: "silent" }),
};

/** A registration that records the settings its factory is given instead of making a driver. */
function recording(): { factory: DriverFactory; made: unknown[] } {
  const made: unknown[] = [];
  const factory = defineDriver({
    settings: z
      .object({
        platform: z.enum(["ptrace", "systrap"]).default("ptrace"),
        memoryOverheadMb: z.coerce.number().int().positive().optional(),
      })
      .strict(),
    create: (_options, settings) => {
      made.push(settings);
      return { name: "vm" } as SandboxDriver;
    },
  });
  return { factory, made };
}

function configFor(env: NodeJS.ProcessEnv) {
  return parseConfig({ ...configFromEnv(env), logLevel: "silent" });
}

describe("driver settings", () => {
  it("come from POLYDEV_DRIVER_<NAME>_<SETTING>, camel-cased, and reach the driver's factory parsed", () => {
    const config = configFor({
      POLYDEV_DRIVERS: "vm",
      POLYDEV_DRIVER_VM_PLATFORM: "systrap",
      POLYDEV_DRIVER_VM_MEMORY_OVERHEAD_MB: "256",
    });
    expect(config.driverSettings).toEqual({ vm: { platform: "systrap", memoryOverheadMb: "256" } });
    const { factory, made } = recording();
    const [, vm] = configuredDrivers(config, {
      namespace: () => ({ name: "namespace" }) as SandboxDriver,
      vm: factory,
    });
    expect(vm?.name).toBe("vm");
    vm?.make(OPTIONS);
    expect(made).toEqual([{ platform: "systrap", memoryOverheadMb: 256 }]);
  });

  it("take the schema's defaults when none are set", () => {
    const { factory, made } = recording();
    const [vm] = configuredDrivers(configFor({ POLYDEV_DRIVER: "vm" }), { vm: factory });
    vm?.make(OPTIONS);
    expect(made).toEqual([{ platform: "ptrace" }]);
  });

  it("refuse a bad value, naming the variable and what is wrong", () => {
    const { factory } = recording();
    expect(() =>
      configuredDrivers(configFor({ POLYDEV_DRIVER: "vm", POLYDEV_DRIVER_VM_PLATFORM: "kvm" }), {
        vm: factory,
      }),
    ).toThrow(/POLYDEV_DRIVER_VM_PLATFORM: .*"ptrace".*"systrap"/);
  });

  it("refuse a setting the driver does not have, even for a driver not turned on", () => {
    const { factory } = recording();
    const namespace = () => ({ name: "namespace" }) as SandboxDriver;
    expect(() =>
      configuredDrivers(configFor({ POLYDEV_DRIVER_VM_PLATFROM: "systrap" }), { namespace, vm: factory }),
    ).toThrow(/POLYDEV_DRIVER_VM_PLATFROM: no such setting of the vm driver/);
  });

  it("refuse settings for a driver this build does not have, and for one that takes none", () => {
    const namespace = () => ({ name: "namespace" }) as SandboxDriver;
    expect(() =>
      configuredDrivers(configFor({ POLYDEV_DRIVER_FIRECRACKER_VCPUS: "2" }), { namespace }),
    ).toThrow(
      /POLYDEV_DRIVER_FIRECRACKER_VCPUS sets a setting of "firecracker", which is no driver of this build \(it has: namespace\)/,
    );
    expect(() => configuredDrivers(configFor({ POLYDEV_DRIVER_NAMESPACE_X: "1" }), { namespace })).toThrow(
      /the namespace driver takes no settings \(got POLYDEV_DRIVER_NAMESPACE_X\)/,
    );
  });

  it("keep the namespace driver's older POLYDEV_TUNE_HOST_CGROUPS, the new name winning", () => {
    expect(configFor({ POLYDEV_TUNE_HOST_CGROUPS: "false" }).driverSettings).toEqual({
      namespace: { tuneHostCgroups: "false" },
    });
    expect(
      configFor({ POLYDEV_TUNE_HOST_CGROUPS: "false", POLYDEV_DRIVER_NAMESPACE_TUNE_HOST_CGROUPS: "true" })
        .driverSettings,
    ).toEqual({ namespace: { tuneHostCgroups: "true" } });
  });
});
