import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { favorDynamicCgroupChanges } from "./cgroup-tuning.js";

describe("cgroup tuning", () => {
  it("leaves the host's cgroup2 mount with favordynmods when the kernel has it", async () => {
    const features = await readFile("/sys/kernel/cgroup/features", "utf8").catch(() => "");
    const mounts = await readFile("/proc/self/mounts", "utf8");
    const cgroup2 = mounts.split("\n").find((line) => line.split(" ")[2] === "cgroup2");
    const result = await favorDynamicCgroupChanges();
    if (cgroup2 === undefined || !features.split("\n").includes("favordynmods")) {
      expect(result.state).toBe("unavailable");
      return;
    }
    expect(["enabled", "already"]).toContain(result.state);
    const after = (await readFile("/proc/self/mounts", "utf8"))
      .split("\n")
      .find((line) => line.split(" ")[2] === "cgroup2");
    expect(after?.split(" ")[3]?.split(",")).toContain("favordynmods");
    // A second call finds it done.
    expect((await favorDynamicCgroupChanges()).state).toBe("already");
  });
});
