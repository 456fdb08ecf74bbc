/**
 * The guest kernel: Debian's cloud kernel (the versioned package linux-image-cloud-amd64
 * depends on), fetched with `apt-get download` and unpacked with `dpkg-deb -x` into the host
 * cache, keyed by package and version; never installed on the host.
 */
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";
import { ensureCacheEntry } from "./cache-entry.js";
import { hostCommand } from "./host-command.js";

export const KERNEL_META_PACKAGE = "linux-image-cloud-amd64";

export interface GuestKernel {
  /** The bzImage QEMU boots. */
  vmlinuz: string;
  /** lib/modules/<release>/kernel of the package. */
  modulesDir: string;
  key: string;
}

async function versionedPackage(): Promise<{ name: string; version: string }> {
  const depends = await hostCommand("apt-cache", ["depends", KERNEL_META_PACKAGE], { what: "apt-cache" });
  const name = /Depends: (linux-image-[0-9][^\s]*-cloud-amd64)/.exec(depends)?.[1];
  if (name === undefined) {
    throw new PolydevError(
      "driver_unavailable",
      `apt knows no ${KERNEL_META_PACKAGE} (the microvm driver's guest kernel): run apt-get update`,
    );
  }
  const show = await hostCommand("apt-cache", ["show", "--no-all-versions", name], { what: "apt-cache" });
  const version = /^Version: (\S+)$/m.exec(show)?.[1];
  if (version === undefined) throw new PolydevError("driver_unavailable", `apt has no version of ${name}`);
  return { name, version };
}

export async function ensureGuestKernel(cacheDir: string): Promise<GuestKernel> {
  const { name, version } = await versionedPackage();
  const key = `kernel-${name}-${version}`.replace(/[^A-Za-z0-9._-]/g, "_");
  const entry = await ensureCacheEntry(cacheDir, key, async (partial) => {
    const download = await mkdtemp(join(tmpdir(), "polydev-kernel-"));
    try {
      // apt's sandbox user downloads into a directory it can write.
      await chmod(download, 0o777);
      await hostCommand("apt-get", ["download", "-q", name], { cwd: download, what: "apt-get download" });
      const deb = (await readdir(download)).find((file) => file.endsWith(".deb"));
      if (deb === undefined)
        throw new PolydevError("driver_unavailable", `apt-get download ${name} gave no .deb`);
      await hostCommand("dpkg-deb", ["-x", join(download, deb), partial], { what: "dpkg-deb" });
    } finally {
      await rm(download, { recursive: true, force: true });
    }
  });
  const boot = await readdir(join(entry, "boot"));
  const vmlinuz = boot.find((file) => file.startsWith("vmlinuz-"));
  const release = vmlinuz?.slice("vmlinuz-".length);
  const modulesDir = join(entry, "lib", "modules", release ?? "", "kernel");
  if (vmlinuz === undefined || !existsSync(modulesDir)) {
    throw new PolydevError("driver_unavailable", `the kernel package in ${entry} has no vmlinuz or modules`);
  }
  return { vmlinuz: join(entry, "boot", vmlinuz), modulesDir, key };
}
