import { describe, expect, it } from "vitest";
import { driverSettingsFromEnv } from "./drivers.js";

describe("driver settings from the environment", () => {
  it("tunes the host's cgroups unless the operator says false", () => {
    expect(driverSettingsFromEnv({}).tuneHostCgroups).toBe(true);
    expect(driverSettingsFromEnv({ POLYDEV_TUNE_HOST_CGROUPS: "true" }).tuneHostCgroups).toBe(true);
    expect(driverSettingsFromEnv({ POLYDEV_TUNE_HOST_CGROUPS: "false" }).tuneHostCgroups).toBe(false);
    expect(driverSettingsFromEnv({ POLYDEV_TUNE_HOST_CGROUPS: "0" }).tuneHostCgroups).toBe(false);
  });

  it("refuses a value that is neither true nor false, naming the variable", () => {
    expect(() => driverSettingsFromEnv({ POLYDEV_TUNE_HOST_CGROUPS: "nope" })).toThrow(
      /POLYDEV_TUNE_HOST_CGROUPS must be true or false/,
    );
  });
});
