import { posix } from "node:path";
import { PolydevError } from "@polydev/core";

export const outsideHome = (path: string): PolydevError =>
  new PolydevError("path_outside_home", `"${path}" is outside the home; the path must stay under the home`, {
    details: { path },
  });

/**
 * The cheap first check, before anything runs: a relative path without `..` segments. The file
 * scripts check again after resolving symlinks inside the sandbox, which no up-front check can.
 */
export function checkRelativePath(path: string): string {
  if (path.includes("\0")) throw new PolydevError("invalid_request", "a path cannot contain NUL bytes");
  if (path.startsWith("/")) {
    throw new PolydevError(
      "path_outside_home",
      `"${path}" is absolute; give a path relative to the home (the path must stay under the home)`,
      { details: { path } },
    );
  }
  if (path.split("/").includes("..")) throw outsideHome(path);
  const normalized = posix.normalize(path === "" ? "." : path);
  return normalized.endsWith("/") && normalized !== "/" ? normalized.slice(0, -1) : normalized;
}
