/**
 * slirp4netns as both drivers start it: it configures the namespace it is given, and its own
 * sandbox (pivot_root, then detaching the old root) unmounts nothing of the host's, such as the
 * `ip netns` namespaces bound under /run/netns.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { egressAvailable, slirpReady, spawnSlirp } from "./slirp.js";

const run = promisify(execFile);
const unavailable =
  process.getuid?.() !== 0
    ? "needs root (network namespaces)"
    : egressAvailable()
      ? null
      : "slirp4netns is not installed";

describe.skipIf(unavailable !== null)(`slirp4netns${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  it("configures tap0 in the namespace and leaves the host's /run/netns namespaces mounted", async () => {
    const named = `pdtest-slirp-${randomBytes(3).toString("hex")}`;
    await run("ip", ["netns", "add", named]);
    // A namespace held by a process, as bubblewrap's is.
    const holder = spawn("unshare", ["--net", "sleep", "60"], { stdio: "ignore" });
    let slirpPid: number | undefined;
    try {
      await new Promise((resolve) => holder.once("spawn", resolve));
      // unshare execs sleep once the namespace exists; the namespace is the holder's either way.
      await expect
        .poll(
          async () =>
            (await run("readlink", [`/proc/${holder.pid}/ns/net`])).stdout !==
            (await run("readlink", ["/proc/self/ns/net"])).stdout,
        )
        .toBe(true);
      slirpPid = await slirpReady(spawnSlirp(`/proc/${holder.pid}/ns/net`, [], "ignore"), 10_000);
      const { stdout } = await run("nsenter", [
        `--net=/proc/${holder.pid}/ns/net`,
        "ip",
        "-4",
        "addr",
        "show",
        "tap0",
      ]);
      expect(stdout).toContain("10.0.2.100/24");
      await expect(run("ip", ["netns", "exec", named, "true"])).resolves.toBeDefined();
    } finally {
      if (slirpPid !== undefined) process.kill(slirpPid, "SIGKILL");
      holder.kill("SIGKILL");
      await run("ip", ["netns", "del", named]).catch(() => undefined);
    }
  });
});
