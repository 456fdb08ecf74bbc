import { lstat, mkdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";

/**
 * Turns an archive entry name into its components inside the target, or refuses it. Layers are
 * written by `tar` and Go's archive/tar with names like `./usr/bin/` or `usr/bin`; both mean the
 * same place. `..` is refused outright rather than normalised away: a legitimate layer never needs it,
 * and normalising would let `a/../../x` be judged by a rule other than the one the kernel applies.
 */
export function layerPathComponents(name: string, what: string, maxPathLength: number): string[] {
  if (Buffer.byteLength(name) > maxPathLength) {
    throw new PolydevError(
      "payload_too_large",
      `${what} ${JSON.stringify(name.slice(0, 64))}… is longer than ${maxPathLength} bytes`,
      { details: { maxPathLength } },
    );
  }
  if (name.includes("\0")) throw refused(what, name, "contains a NUL byte");
  if (name.startsWith("/")) throw refused(what, name, "is absolute");
  const components = name.split("/").filter((component) => component !== "" && component !== ".");
  if (components.includes("..")) throw refused(what, name, "has a '..' component");
  return components;
}

function refused(what: string, name: string, why: string): PolydevError {
  return new PolydevError("invalid_request", `layer ${what} ${JSON.stringify(name)} ${why}`, {
    details: { entry: name },
  });
}

/** Most symlinks followed while resolving one path, as Linux's MAXSYMLINKS. */
export const MAX_SYMLINKS_PER_PATH = 40;

export interface ResolveParentOptions {
  /** Create missing parents as real directories (mode 0o700), telling `onCreate` their paths. */
  create: boolean;
  onCreate?: (components: readonly string[]) => void;
}

/**
 * Resolves the parent of `components` inside `root` the way the sandbox will see it, with `root` as
 * `/`: every symlink met among the PARENT components is followed, an absolute link target is taken
 * relative to `root`, `..` never climbs above `root`, and more than MAX_SYMLINKS_PER_PATH links is
 * refused (Go's filepath-securejoin, openat2 RESOLVE_IN_ROOT). The last component is never followed.
 *
 * Node has no openat(2), so each component is lstat'ed in turn and only real directories enter the
 * resolved path; `..` then simply drops its last component. That is sound because the unpacker is the
 * only writer of `root` while it runs (the sandbox using it is not started yet): nothing can swap a
 * checked directory for a symlink between the check and the write.
 *
 * Returns the resolved parent's components (real directories all, none a symlink), or null when one
 * is missing and `create` is false. A parent that is neither a directory nor a symlink is refused.
 */
export async function resolveParent(
  root: string,
  components: readonly string[],
  entry: string,
  options: ResolveParentOptions,
): Promise<string[] | null> {
  const pending = components.slice(0, -1).reverse();
  const resolved: string[] = [];
  let links = 0;
  for (let component = pending.pop(); component !== undefined; component = pending.pop()) {
    if (component === "" || component === ".") continue;
    if (component === "..") {
      resolved.pop();
      continue;
    }
    const path = join(root, ...resolved, component);
    const stats = await lstatOrNull(path);
    if (stats === null) {
      if (!options.create) return null;
      await mkdir(path, { mode: 0o700 });
      resolved.push(component);
      options.onCreate?.(resolved);
      continue;
    }
    if (stats.isSymbolicLink()) {
      links += 1;
      if (links > MAX_SYMLINKS_PER_PATH) {
        throw new PolydevError(
          "invalid_request",
          `layer entry ${JSON.stringify(entry)}: too many levels of symbolic links (more than ${MAX_SYMLINKS_PER_PATH})`,
          { details: { entry } },
        );
      }
      const target = await readlink(path);
      if (target === "") {
        throw new PolydevError(
          "invalid_request",
          `layer entry ${JSON.stringify(entry)} goes through the symlink ${JSON.stringify([...resolved, component].join("/"))}, which has an empty target`,
          { details: { entry } },
        );
      }
      if (target.startsWith("/")) resolved.length = 0;
      pending.push(...target.split("/").reverse());
      continue;
    }
    if (!stats.isDirectory()) {
      throw new PolydevError(
        "invalid_request",
        `layer entry ${JSON.stringify(entry)} has ${JSON.stringify([...resolved, component].join("/"))} as a parent, which is not a directory`,
        { details: { entry } },
      );
    }
    resolved.push(component);
  }
  return resolved;
}

/**
 * True when every parent of `components` inside `root` is a real directory (no symlink, nothing
 * missing): used to re-check an already resolved path, which must not have changed since.
 */
export async function parentsAreDirectories(root: string, components: readonly string[]): Promise<boolean> {
  let path = root;
  for (const component of components.slice(0, -1)) {
    path = join(path, component);
    const stats = await lstatOrNull(path);
    if (stats === null || !stats.isDirectory()) return false;
  }
  return true;
}

export async function lstatOrNull(path: string): Promise<import("node:fs").Stats | null> {
  try {
    return await lstat(path);
  } catch (error) {
    if (isErrno(error, "ENOENT")) return null;
    throw error;
  }
}

export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && "code" in error && error.code === code;
}
