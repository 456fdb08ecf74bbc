import { describe, expect, it } from "vitest";
import { FirecrackerVmm } from "./firecracker-vmm.js";

const vmm = new FirecrackerVmm();
const missing = await vmm.unavailable();

describe("FirecrackerVmm", () => {
  it("says what this host lacks, naming Firecracker's binary", async () => {
    if (missing === undefined) return;
    expect(missing).toMatch(/Firecracker|\/dev\/kvm/);
  });
  if (missing !== undefined) {
    it.skip("boots and restores a VM (skipped: Firecracker is not installed on this host (no binary in Debian bookworm))", () =>
      undefined);
  }
});
