/**
 * File operations run INSIDE the sandbox as small POSIX sh scripts, through the same launcher
 * as any command: paths (and symlinks) resolve in the sandbox's own filesystem as the sandbox
 * user, so no host path is ever touched. A race between the check and the operation can at
 * worst reach a file the sandbox user could already read, never a host file.
 */
import { PolydevError } from "@polydev/core";

/** Exit codes the scripts use to say what went wrong. */
export const FileExit = {
  outsideHome: 91,
  notFound: 92,
  notDirectory: 93,
  isDirectory: 94,
  exists: 95,
  failed: 96,
} as const;

// $1 = home, $2 = path relative to home. `resolve` follows every symlink; `resolve_parent`
// follows the parent's and keeps the last name, so the link itself can be replaced or removed.
const PRELUDE = `
set -u
home=$1; rel=$2; shift 2
inside() { case "$1" in "$home"|"$home"/*) return 0;; *) return 1;; esac; }
resolve() { r=$(realpath -m -- "$home/$rel") || exit ${FileExit.failed}; inside "$r" || exit ${FileExit.outsideHome}; p=$r; }
resolve_parent() {
  d=$(realpath -m -- "$(dirname -- "$home/$rel")") || exit ${FileExit.failed}
  inside "$d" || exit ${FileExit.outsideHome}
  p="$d/$(basename -- "$rel")"
  [ "$rel" = "." ] && p=$d
}
`;

const STAT_FORMAT = "%y\\t%s\\t%T@\\t%m\\t%f\\0";

export const scripts = {
  stat: `${PRELUDE}
resolve
[ -e "$p" ] || [ -L "$p" ] || exit ${FileExit.notFound}
exec find "$p" -maxdepth 0 -printf '${STAT_FORMAT}'`,
  list: `${PRELUDE}
resolve
[ -e "$p" ] || exit ${FileExit.notFound}
[ -d "$p" ] || exit ${FileExit.notDirectory}
exec find "$p" -mindepth 1 -maxdepth 1 -printf '${STAT_FORMAT}'`,
  read: `${PRELUDE}
resolve
[ -e "$p" ] || exit ${FileExit.notFound}
[ -d "$p" ] && exit ${FileExit.isDirectory}
exec cat -- "$p"`,
  // $1 after the shift: octal mode or "-". Upload to a temporary name, then rename: a failed
  // or interrupted upload never leaves half a file under the real name.
  write: `${PRELUDE}
resolve_parent
[ -d "$p" ] && exit ${FileExit.isDirectory}
d=$(dirname -- "$p")
mkdir -p -- "$d" 2>/dev/null || exit ${FileExit.notDirectory}
t="$d/.polydev-upload-$$"
if ! cat > "$t"; then rm -f -- "$t"; exit ${FileExit.failed}; fi
[ "$1" = "-" ] || chmod "$1" "$t" || { rm -f -- "$t"; exit ${FileExit.failed}; }
mv -f -- "$t" "$p" || { rm -f -- "$t"; exit ${FileExit.failed}; }
wc -c < "$p"`,
  mkdir: `${PRELUDE}
resolve
if [ "$1" = "parents" ]; then mkdir -p -- "$p" 2>/dev/null || exit ${FileExit.notDirectory}; exit 0; fi
[ -e "$p" ] && exit ${FileExit.exists}
mkdir -- "$p" 2>/dev/null || exit ${FileExit.notFound}`,
  remove: `${PRELUDE}
resolve_parent
[ "$p" = "$home" ] && exit ${FileExit.outsideHome}
[ -e "$p" ] || [ -L "$p" ] || exit ${FileExit.notFound}
if [ -d "$p" ] && [ ! -L "$p" ]; then
  if [ "$1" = "recursive" ]; then rm -rf -- "$p"; else rmdir -- "$p" 2>/dev/null || exit ${FileExit.exists}; fi
else rm -f -- "$p"; fi`,
  // Polled listing for watch: one line per entry below the path (bounded depth and count).
  snapshot: `${PRELUDE}
resolve
[ -d "$p" ] || exit ${FileExit.notDirectory}
cd "$p" && find . -mindepth 1 -maxdepth 6 -printf '%P\\t%s\\t%T@\\0' 2>/dev/null | head -z -n 20000`,
} as const;

export type FileOperation = keyof typeof scripts;

/** Up-front check: relative, no `..` segments. The scripts check again after resolving links. */
export function validateRelativePath(path: string): string {
  if (path.length === 0) return ".";
  if (path.includes("\0")) throw new PolydevError("invalid_request", "paths cannot contain NUL bytes");
  if (path.startsWith("/")) {
    throw new PolydevError("path_outside_home", `"${path}" is absolute; give a path relative to the home`);
  }
  if (path.split("/").includes("..")) {
    throw new PolydevError("path_outside_home", `"${path}" uses '..'; paths must stay under the home`);
  }
  return path;
}

export function fileError(exitCode: number | null, path: string, stderr: string): PolydevError {
  switch (exitCode) {
    case FileExit.outsideHome:
      return new PolydevError(
        "path_outside_home",
        `"${path}" resolves outside the home; paths must stay under it`,
      );
    case FileExit.notFound:
      return new PolydevError("not_found", `"${path}" does not exist`);
    case FileExit.notDirectory:
      return new PolydevError("invalid_request", `"${path}" (or its parent) is not a directory`);
    case FileExit.isDirectory:
      return new PolydevError("invalid_request", `"${path}" is a directory`);
    case FileExit.exists:
      return new PolydevError("conflict", `"${path}" already exists or is not empty`);
    default:
      return new PolydevError(
        "command_failed",
        `file operation on "${path}" failed: ${stderr.trim().slice(0, 500)}`,
      );
  }
}
