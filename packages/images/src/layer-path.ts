import { lstat } from "node:fs/promises";
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

/**
 * Checks every existing parent of `components` inside `root` is a real directory, never a symlink.
 * Node has no openat(2), so O_NOFOLLOW can only guard the last component of an open; instead each
 * parent is lstat'ed in turn and a symlink anywhere above the entry is refused. That is sound because
 * the unpacker is the only writer of `root` while it runs (the sandbox using it is not started yet):
 * nothing can swap a checked directory for a symlink between the check and the write. Missing parents
 * are reported by index so the caller creates them (as real directories) itself.
 *
 * Returns the index of the first missing parent, or `components.length - 1` when all exist.
 */
export async function checkParents(
  root: string,
  components: readonly string[],
  entry: string,
): Promise<number> {
  let path = root;
  for (let index = 0; index < components.length - 1; index += 1) {
    path = join(path, components[index] ?? "");
    const stats = await lstatOrNull(path);
    if (stats === null) return index;
    if (stats.isSymbolicLink()) {
      throw new PolydevError(
        "invalid_request",
        `layer entry ${JSON.stringify(entry)} goes through the symlink ${JSON.stringify(components.slice(0, index + 1).join("/"))}, which is never followed`,
        { details: { entry } },
      );
    }
    if (!stats.isDirectory()) {
      throw new PolydevError(
        "invalid_request",
        `layer entry ${JSON.stringify(entry)} has ${JSON.stringify(components.slice(0, index + 1).join("/"))} as a parent, which is not a directory`,
        { details: { entry } },
      );
    }
  }
  return components.length - 1;
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
