/** The shipped drivers' own settings schemas, through the server's one validation. */
import { configFromEnv, configuredDrivers, parseConfig } from "@polydev/server";
import { describe, expect, it } from "vitest";
import { DRIVERS } from "./drivers.js";

function check(env: NodeJS.ProcessEnv) {
  return configuredDrivers(parseConfig({ ...configFromEnv(env), logLevel: "silent" }), DRIVERS);
}

describe("the shipped drivers' settings", () => {
  it("accept what the README documents", () => {
    expect(
      check({
        POLYDEV_DRIVERS: "gvisor",
        POLYDEV_DRIVER_NAMESPACE_TUNE_HOST_CGROUPS: "false",
        POLYDEV_DRIVER_GVISOR_PLATFORM: "systrap",
        POLYDEV_DRIVER_GVISOR_RUNSC_PATH: "/opt/gvisor/runsc",
        POLYDEV_DRIVER_GVISOR_MEMORY_OVERHEAD_MB: "192",
        POLYDEV_DRIVER_GVISOR_READY_TIMEOUT_MS: "60000",
        POLYDEV_DRIVER_MICROVM_ACCEL: "kvm",
        POLYDEV_DRIVER_MICROVM_CACHE_DIR: "/srv/polydev/microvm",
        POLYDEV_DRIVER_MICROVM_BOOT_TIMEOUT_MS: "300000",
      }).map((driver) => driver.name),
    ).toEqual(["namespace", "gvisor"]);
  });

  it("refuse the namespace driver's cgroup tuning unless it is true or false, under either name", () => {
    expect(() => check({ POLYDEV_TUNE_HOST_CGROUPS: "nope" })).toThrow(
      /POLYDEV_DRIVER_NAMESPACE_TUNE_HOST_CGROUPS: must be true or false/,
    );
  });

  it("refuse a gvisor platform runsc does not have and a relative runsc path, naming each variable", () => {
    expect(() => check({ POLYDEV_DRIVER_GVISOR_PLATFORM: "hvf" })).toThrow(
      /POLYDEV_DRIVER_GVISOR_PLATFORM: /,
    );
    expect(() => check({ POLYDEV_DRIVER_GVISOR_RUNSC_PATH: "runsc" })).toThrow(
      /POLYDEV_DRIVER_GVISOR_RUNSC_PATH: must be an absolute path/,
    );
    expect(() => check({ POLYDEV_DRIVER_GVISOR_MEMORY_OVERHEAD_MB: "lots" })).toThrow(
      /POLYDEV_DRIVER_GVISOR_MEMORY_OVERHEAD_MB: /,
    );
  });

  it("refuse a microvm accelerator QEMU is not given here, naming the variable", () => {
    expect(() => check({ POLYDEV_DRIVER_MICROVM_ACCEL: "hvf" })).toThrow(/POLYDEV_DRIVER_MICROVM_ACCEL: /);
    expect(() => check({ POLYDEV_DRIVER_MICROVM_CACHE_DIR: "cache" })).toThrow(
      /POLYDEV_DRIVER_MICROVM_CACHE_DIR: must be an absolute path/,
    );
  });
});
