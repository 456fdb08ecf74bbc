/**
 * The escape-probe suite on microvm sandboxes of the default image, as its own user with sudo
 * at hand: whatever root in the guest can do must still reach nothing outside the VM. The
 * network probes run on "none" and "egress" sandboxes (guest-network.ts) alike.
 */
import { join } from "node:path";
import { runEscapeProbes } from "@polydev/core/testing";
import { describe, it } from "vitest";
import { microvmUnavailable, testDriver, testImage } from "./testing/test-driver.js";

const unavailable = microvmUnavailable();

if (unavailable !== null) {
  describe("escape probes: microvm", () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
} else {
  const image = await testImage("user");
  /**
   * Probes whose premise is the host kernel answering the call: in a VM the guest's own kernel
   * answers it, a kernel no other sandbox and nothing of the host shares. Listed one by one so
   * each gap stays visible. (mknod, nested user namespaces, the clock and the kernel log are
   * refused in the guest too: the sandbox's root is root of a user namespace only.)
   */
  const servedByGuestKernel = {
    "syscalls.io-uring": "io_uring_setup is answered by the guest's kernel, not the host's",
    "syscalls.keyring":
      "keyrings are the guest kernel's own; nothing of the host's or another sandbox's is in them",
    "syscalls.userfaultfd":
      "userfaultfd is the guest kernel's (6.1 lets user-mode-only faults through): it can stall only this guest's own memory",
  } as const;
  runEscapeProbes(
    "microvm",
    async () => {
      const { driver, rootDir, cleanup } = await testDriver("escape");
      return {
        driver,
        hostSecretPaths: [rootDir],
        hostStateDirs: [join(rootDir, "sandboxes")],
        cleanup,
      };
    },
    {
      image,
      timeoutMs: 120_000,
      skip: {
        ...servedByGuestKernel,
        "descriptors.background":
          "a background command's stdout is a file in the agent's state directory of the guest (its own 64 MiB /run, outside the sandbox's root), so its path does not resolve inside the sandbox; it is a guest file, never a host one",
      },
    },
  );
}
