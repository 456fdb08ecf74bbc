import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, rename } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { PolydevError } from "@polydev/core";
import { ensureCachedBuild } from "./build-cache.js";
import { removeBuildDirectory, requireBuildTools, runBuildProcess } from "./build-process.js";

/** The name of the default image. */
export const BASE_IMAGE_NAME = "polydev/base";
export const BASE_IMAGE_SUITE = "bookworm";
export const DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian";
export const DEFAULT_DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security";

/**
 * What the default image holds beyond Debian's `minbase` (Essential and priority-required packages
 * plus apt). An editor: nano, the one a newcomer can leave. No locales package: glibc 2.36 has
 * C.UTF-8 built in.
 */
export const BASE_IMAGE_PACKAGES: readonly string[] = Object.freeze([
  "bash",
  "build-essential",
  "ca-certificates",
  "curl",
  "git",
  "jq",
  "less",
  "nano",
  "procps",
  "python3",
  "python3-pip",
  "python3-venv",
  "sudo",
  "unzip",
]);

/** The image's own user: uid and gid 1000, in group sudo, with passwordless sudo. */
export const BASE_IMAGE_USER = Object.freeze({ name: "user", uid: 1000, gid: 1000, home: "/home/user" });

/** The environment a sandbox of the default image starts with (the image's "config"). */
export const BASE_IMAGE_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8",
});

/** Documentation, manual pages and translations are left out, as Debian's slim images do. */
const DPKG_PATH_FILTERS: readonly string[] = [
  "path-exclude=/usr/share/man/*",
  "path-exclude=/usr/share/info/*",
  "path-exclude=/usr/share/locale/*",
  "path-include=/usr/share/locale/locale.alias",
  "path-exclude=/usr/share/doc/*",
  "path-include=/usr/share/doc/*/copyright",
];

/**
 * Run by mmdebstrap inside its chroot's setup, with the chroot as "$1". A fixed text: nothing of a
 * request reaches it. `/etc/resolv.conf` is the driver's (it knows the sandbox's network), so the
 * host's, which mmdebstrap copies in, is replaced by a placeholder. `/opt/polydev` is where the
 * toolbox is mounted.
 */
const CUSTOMIZE_SCRIPT = `set -eu
root="$1"
chroot "$root" groupadd --gid ${BASE_IMAGE_USER.gid} ${BASE_IMAGE_USER.name}
chroot "$root" useradd --uid ${BASE_IMAGE_USER.uid} --gid ${BASE_IMAGE_USER.gid} --groups sudo --create-home --home-dir ${BASE_IMAGE_USER.home} --shell /bin/bash ${BASE_IMAGE_USER.name}
printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\\n' ${BASE_IMAGE_USER.name} > "$root/etc/sudoers.d/polydev-user"
chmod 0440 "$root/etc/sudoers.d/polydev-user"
printf 'polydev\\n' > "$root/etc/hostname"
printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\tpolydev\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' > "$root/etc/hosts"
printf '# written by the sandbox driver when the sandbox starts\\n' > "$root/etc/resolv.conf"
printf 'LANG=C.UTF-8\\n' > "$root/etc/default/locale"
chmod 0644 "$root/etc/hostname" "$root/etc/hosts" "$root/etc/resolv.conf" "$root/etc/default/locale"
mkdir -p "$root/opt/polydev"
chmod 0755 "$root/opt/polydev"
`;

/** Bumped whenever the build's steps change in a way the other inputs do not show. */
export const BASE_IMAGE_SCRIPT_VERSION = 1;

export interface BaseImageInputs {
  /** A Debian mirror (default `DEFAULT_DEBIAN_MIRROR`); the image's apt sources point at it. */
  mirror?: string;
  /**
   * The security archive. Default: Debian's when `mirror` is the default, none otherwise (a
   * private mirror usually carries its own `bookworm-security`, or the host cannot reach Debian's).
   */
  securityMirror?: string | null;
}

export interface BuildBaseRootfsOptions extends BaseImageInputs {
  /** Each line of mmdebstrap's (and apt's and dpkg's) output as it comes. */
  onProgress?(line: string): void;
  signal?: AbortSignal;
  /** Proxy variables for apt (see `buildEnvironmentFrom`); nothing else of the server's environment is passed. */
  env?: Readonly<Record<string, string>>;
}

function sourcesOf(inputs: BaseImageInputs): string[] {
  const mirror = inputs.mirror ?? DEFAULT_DEBIAN_MIRROR;
  if (!/^(https?|file):\/\/[^\s"'\\]+$/.test(mirror)) {
    throw new PolydevError(
      "invalid_request",
      `the Debian mirror ${JSON.stringify(mirror)} is not an http(s) or file URL`,
    );
  }
  const security =
    inputs.securityMirror === undefined
      ? mirror === DEFAULT_DEBIAN_MIRROR
        ? DEFAULT_DEBIAN_SECURITY_MIRROR
        : null
      : inputs.securityMirror;
  if (security !== null && !/^(https?|file):\/\/[^\s"'\\]+$/.test(security)) {
    throw new PolydevError(
      "invalid_request",
      `the Debian security mirror ${JSON.stringify(security)} is not an http(s) or file URL`,
    );
  }
  const suite = BASE_IMAGE_SUITE;
  const sources = [`deb ${mirror} ${suite} main`, `deb ${mirror} ${suite}-updates main`];
  if (security !== null) sources.push(`deb ${security} ${suite}-security main`);
  return sources;
}

/**
 * A stable hash of everything the build depends on (suite, packages, the script and its version,
 * the apt sources): callers keep one build per key. It does not change when Debian publishes
 * updates: a rebuild with newer packages is explicit (remove the cached directory).
 */
export function baseImageKey(inputs: BaseImageInputs = {}): string {
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify({
      suite: BASE_IMAGE_SUITE,
      variant: "minbase",
      packages: BASE_IMAGE_PACKAGES,
      dpkg: DPKG_PATH_FILTERS,
      script: CUSTOMIZE_SCRIPT,
      version: BASE_IMAGE_SCRIPT_VERSION,
      sources: sourcesOf(inputs),
    }),
  );
  return hash.digest("hex").slice(0, 32);
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return false;
    throw error;
  }
}

/**
 * Builds the default image `polydev/base` into `targetDir` (which must not exist) as a directory
 * root file system, with Debian's mmdebstrap as root: bookworm `minbase` plus
 * `BASE_IMAGE_PACKAGES`, the user `user` (1000:1000, home /home/user, bash, group sudo,
 * passwordless sudo via /etc/sudoers.d/polydev-user, 0440). Owners are the image's own (root 0,
 * user 1000): the directory is meant as an overlay lower layer used through idmapped mounts.
 *
 * apt's package lists are removed, as in Debian's container images: `apt-get update` comes first
 * in a sandbox, which also means a sandbox never installs from stale lists. No device nodes are
 * left in the tree (the driver mounts its own /dev).
 *
 * It builds into `<targetDir>.partial-<random>` and renames at the end, so a crash leaves no half
 * image under the target's name (`ensureBaseRootfs` sweeps the leftovers). mmdebstrap runs in its
 * own mount and PID namespaces: the /proc, /sys and /dev it mounts into the chroot never appear on
 * the host and vanish with it, and an abort (SIGKILL of the namespace) stops every process of the
 * build. On failure or abort the partial directory is removed and the error rethrown.
 */
export async function buildBaseRootfs(
  targetDir: string,
  options: BuildBaseRootfsOptions = {},
): Promise<void> {
  const target = resolve(targetDir);
  const sources = sourcesOf(options);
  requireBuildTools("the default image", ["/usr/bin/mmdebstrap", "/usr/bin/unshare", "/usr/bin/find"]);
  options.signal?.throwIfAborted();
  if (await exists(target)) {
    throw new PolydevError("conflict", `the base image target ${target} already exists`);
  }
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  const partial = join(dirname(target), `${basename(target)}.partial-${randomBytes(6).toString("hex")}`);
  try {
    await runBuildProcess(
      "/usr/bin/unshare",
      [
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--",
        "/usr/bin/mmdebstrap",
        "--mode=root",
        "--format=directory",
        "--variant=minbase",
        "--verbose",
        `--include=${BASE_IMAGE_PACKAGES.join(",")}`,
        ...DPKG_PATH_FILTERS.map((filter) => `--dpkgopt=${filter}`),
        `--customize-hook=${CUSTOMIZE_SCRIPT}`,
        BASE_IMAGE_SUITE,
        partial,
        ...sources,
      ],
      { what: "mmdebstrap", onLine: options.onProgress, signal: options.signal, env: options.env },
    );
    // The device nodes mmdebstrap made for its chroot: an image layer holds none.
    await runBuildProcess(
      "/usr/bin/find",
      [partial, "-xdev", "(", "-type", "b", "-o", "-type", "c", ")", "-delete"],
      { what: "removing device nodes from the base image", signal: options.signal },
    );
    // Written through before it gets its final name: after a power loss the name means complete.
    await runBuildProcess("/bin/sync", ["-f", partial], {
      what: "syncing the base image",
      signal: options.signal,
    });
    options.signal?.throwIfAborted();
    await rename(partial, target);
  } catch (error) {
    // The build's own error is the one to report; a failed cleanup is swept by the next ensure.
    await removeBuildDirectory(partial).catch(() => {});
    throw error;
  }
}

/** What `ensureBaseRootfs` needs beyond the build's own options. */
export interface EnsureBaseRootfsOptions extends BuildBaseRootfsOptions {}

/** The cache entry name of the base image with these inputs. */
export function baseImageEntryName(inputs: BaseImageInputs = {}): string {
  return `base-${baseImageKey(inputs)}`;
}

/**
 * Returns `<cacheDir>/base-<key>` for the current inputs, building it with `buildBaseRootfs` the
 * first time. Concurrent callers share one build (another process waits on a lock file); entries
 * of other keys are left for the caller to remove. `onProgress` is the first caller's.
 */
export function ensureBaseRootfs(cacheDir: string, options: EnsureBaseRootfsOptions = {}): Promise<string> {
  const { signal, ...buildOptions } = options;
  return ensureCachedBuild(
    resolve(cacheDir),
    baseImageEntryName(options),
    (target, buildSignal) => buildBaseRootfs(target, { ...buildOptions, signal: buildSignal }),
    signal,
  );
}
