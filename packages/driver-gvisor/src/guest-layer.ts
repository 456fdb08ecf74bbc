/**
 * The driver's own read-only layer, put on top of every image's layers: the in-guest agent
 * (one esbuild bundle plus node-pty's native part), the statx shim and the /etc/ld.so.preload
 * that loads it, and the mount points the OCI spec binds over. Built once per content and
 * shared by every sandbox of the driver, like an image layer.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { bundleGuestAgent, nodePtyDir } from "@polydev/agent/guest-bundle";
import { PolydevError } from "@polydev/core";

const run = promisify(execFile);

/** Where the layer's files appear inside a sandbox. */
export const GUEST_DIR = "/opt/polydev-gvisor";
export const GUEST_AGENT = `${GUEST_DIR}/agent.mjs`;
/** pid 1 (native/guest-init.c) and the mount point it uses for the Sentry's pids cgroup. */
export const GUEST_INIT = `${GUEST_DIR}/init`;
export const GUEST_CGROUP_DIR = `${GUEST_DIR}/cgroup`;
/** The directory runsc binds to a host directory, where the agent makes its socket. */
export const AGENT_SOCKET_DIR = "/run/polydev-agent";
export const AGENT_SOCKET_NAME = "agent.sock";

const here = dirname(fileURLToPath(import.meta.url));

/** The C sources, beside the package's src and dist. */
const SHIM_SOURCE = join(here, "..", "native", "statx-shim.c");
const INIT_SOURCE = join(here, "..", "native", "guest-init.c");

async function compile(args: string[], what: string): Promise<void> {
  await run("cc", args, { env: { PATH: "/usr/local/bin:/usr/bin:/bin" } }).catch((error: unknown) => {
    throw new PolydevError("driver_unavailable", `cannot build the gVisor ${what}: install gcc`, {
      cause: error,
    });
  });
}

/**
 * Builds (or finds) the layer under `cacheDir` and returns its path. Concurrent builders each
 * write a private directory and rename it into place; the loser's copy is removed.
 */
export async function ensureGuestLayer(cacheDir: string): Promise<string> {
  const [bundle, shim, init] = await Promise.all([
    bundleGuestAgent(here),
    readFile(SHIM_SOURCE, "utf8"),
    readFile(INIT_SOURCE, "utf8"),
  ]);
  const ptyDir = nodePtyDir();
  const ptyPackage = await readFile(join(ptyDir, "package.json"), "utf8");
  const key = createHash("sha256")
    .update(bundle)
    .update(shim)
    .update(init)
    .update(ptyPackage)
    .digest("hex")
    .slice(0, 24);
  const layer = join(cacheDir, `guest-${key}`);
  if (existsSync(layer)) return layer;

  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const partial = `${layer}.partial-${randomBytes(4).toString("hex")}`;
  try {
    const guest = join(partial, GUEST_DIR);
    await mkdir(join(guest, "node_modules", "node-pty", "build"), { recursive: true, mode: 0o755 });
    await writeFile(join(guest, "agent.mjs"), bundle, { mode: 0o644 });
    await writeFile(join(guest, "node_modules", "node-pty", "package.json"), ptyPackage, { mode: 0o644 });
    await cp(join(ptyDir, "lib"), join(guest, "node_modules", "node-pty", "lib"), { recursive: true });
    await cp(join(ptyDir, "build", "Release"), join(guest, "node_modules", "node-pty", "build", "Release"), {
      recursive: true,
    });
    await compile(["-O2", "-shared", "-fPIC", "-o", join(guest, "statx-shim.so"), SHIM_SOURCE], "statx shim");
    // Static: it runs before anything of the image is trusted, in any image.
    await compile(["-O2", "-static", "-o", join(guest, "init"), INIT_SOURCE], "init");
    await mkdir(join(guest, "cgroup"), { mode: 0o755 });
    await mkdir(join(partial, "etc"), { mode: 0o755 });
    await writeFile(join(partial, "etc", "ld.so.preload"), `${GUEST_DIR}/statx-shim.so\n`, { mode: 0o644 });
    // Mount points: the overlay's lower layers are read-only, so they must exist already.
    await mkdir(join(partial, "opt", "polydev"), { recursive: true, mode: 0o755 });
    await mkdir(join(partial, AGENT_SOCKET_DIR), { recursive: true, mode: 0o755 });
    await rename(partial, layer).catch(async (error: NodeJS.ErrnoException) => {
      if (!existsSync(layer)) throw error;
    });
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  return layer;
}
