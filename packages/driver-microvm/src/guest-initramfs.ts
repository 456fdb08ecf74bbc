/**
 * The initramfs every microVM boots: busybox (Debian's busybox-static), the modules the cloud
 * kernel has as modules (virtio and its transport, the block, console and net drivers, overlayfs),
 * the init script, guest-run (native/, static: also the sandbox's activation) and the agent (one
 * esbuild bundle plus node-pty's native part). A newc cpio written by `cpio -o -H newc`, cached
 * by the hash of everything in it.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleGuestAgent, nodePtyDir } from "@polydev/agent/guest-bundle";
import { PolydevError } from "@polydev/core";
import { ensureCacheEntry } from "./cache-entry.js";
import type { GuestKernel } from "./guest-kernel.js";
import { hostCommand } from "./host-command.js";

const here = dirname(fileURLToPath(import.meta.url));
const GUEST_FILES = join(here, "..", "guest");
const NATIVE_DIR = join(here, "..", "native");
/** guest-run's sources: the header first (hashed, not compiled). */
const GUEST_RUN_FILES = ["guest-run.h", "guest-run.c", "guest-activate.c"].map((name) =>
  join(NATIVE_DIR, name),
);

/** Loaded in this order (each after what it depends on; modules.dep is not in the package). */
export const GUEST_MODULES: readonly string[] = Object.freeze([
  "drivers/virtio/virtio_ring",
  "drivers/virtio/virtio",
  "drivers/virtio/virtio_mmio",
  "drivers/block/virtio_blk",
  "drivers/char/virtio_console",
  "fs/overlayfs/overlay",
  // virtio-net (network "egress"; a VM without a NIC loads it and has no interface of it).
  "net/core/failover",
  "drivers/net/net_failover",
  "drivers/net/virtio_net",
]);

const BUSYBOX = "/bin/busybox";

export interface GuestInitramfs {
  path: string;
  key: string;
}

export async function ensureGuestInitramfs(cacheDir: string, kernel: GuestKernel): Promise<GuestInitramfs> {
  if (!existsSync(BUSYBOX)) {
    throw new PolydevError(
      "driver_unavailable",
      "the microvm driver needs busybox-static (apt-get install busybox-static)",
    );
  }
  const [bundle, init, guestRun, busybox] = await Promise.all([
    bundleGuestAgent(here),
    readFile(join(GUEST_FILES, "init.sh")),
    Promise.all(GUEST_RUN_FILES.map((file) => readFile(file))),
    readFile(BUSYBOX),
  ]);
  if (!busybox.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
    throw new PolydevError("driver_unavailable", `${BUSYBOX} is not a binary`);
  }
  const ptyDir = nodePtyDir();
  const ptyPackage = await readFile(join(ptyDir, "package.json"), "utf8");
  const key = createHash("sha256")
    .update(kernel.key)
    .update(GUEST_MODULES.join(","))
    .update(bundle)
    .update(init)
    .update(Buffer.concat(guestRun))
    .update(busybox)
    .update(ptyPackage)
    .digest("hex")
    .slice(0, 24);
  const entry = await ensureCacheEntry(cacheDir, `initramfs-${key}`, async (partial) => {
    const staging = await mkdtemp(join(tmpdir(), "polydev-initramfs-"));
    try {
      const root = join(staging, "root");
      for (const dir of ["bin", "lib/modules", "polydev/node_modules/node-pty/build", "proc", "sys", "dev"]) {
        await mkdir(join(root, dir), { recursive: true, mode: 0o755 });
      }
      await copyFile(BUSYBOX, join(root, "bin", "busybox"));
      await chmod(join(root, "bin", "busybox"), 0o755);
      for (const module of GUEST_MODULES) {
        await copyFile(
          join(kernel.modulesDir, `${module}.ko`),
          join(root, "lib", "modules", `${module.split("/").pop()}.ko`),
        );
      }
      await writeFile(
        join(root, "lib", "modules", "order"),
        `${GUEST_MODULES.map((module) => module.split("/").pop()).join("\n")}\n`,
      );
      await writeFile(join(root, "init"), init, { mode: 0o755 });
      await writeFile(join(root, "polydev", "agent.mjs"), bundle, { mode: 0o644 });
      await writeFile(join(root, "polydev", "node_modules", "node-pty", "package.json"), ptyPackage);
      await cp(join(ptyDir, "lib"), join(root, "polydev", "node_modules", "node-pty", "lib"), {
        recursive: true,
      });
      await cp(
        join(ptyDir, "build", "Release"),
        join(root, "polydev", "node_modules", "node-pty", "build", "Release"),
        {
          recursive: true,
        },
      );
      await hostCommand(
        "cc",
        ["-O2", "-static", "-o", join(root, "polydev", "guest-run"), ...GUEST_RUN_FILES.slice(1)],
        {
          what: "building guest-run (install gcc)",
        },
      );
      const list = (await listFiles(root)).join("\n");
      await writeFile(join(staging, "list"), `${list}\n`);
      await hostCommand(
        "/bin/sh",
        [
          "-c",
          'cd "$1" && cpio -o -H newc -R 0:0 --quiet < "$2" > "$3"',
          "sh",
          root,
          join(staging, "list"),
          join(partial, "initramfs.cpio"),
        ],
        { what: "cpio (apt-get install cpio)" },
      );
      await chmod(join(partial, "initramfs.cpio"), 0o644);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  });
  return { path: join(entry, "initramfs.cpio"), key };
}

/** Every path under `root`, relative, parents first (cpio's order). */
async function listFiles(root: string, prefix = "."): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const path = `${prefix}/${entry.name}`;
    out.push(path);
    if (entry.isDirectory()) out.push(...(await listFiles(root, path)));
  }
  return out;
}
