/**
 * File operations run INSIDE the sandbox, launched like any command: paths and symlinks resolve
 * in the sandbox's own filesystem, as the sandbox user, so a host path is never touched. Where
 * the launcher has a file helper (`SandboxLauncher.fileHelper`, the namespace driver's init
 * binary) it runs that; these short POSIX sh scripts are the fallback for launchers without one,
 * and need sh, realpath -m, find -printf and GNU coreutils in the image. The helper takes the
 * same arguments and answers the same way (exit codes below, the same output).
 *
 * The scripts' check and operation are not atomic; a symlink swapped in between can at worst
 * reach a file the sandbox user could already read, never a host file (the helper reopens what
 * it resolved with no symlink allowed, so it cannot be raced out of the home).
 *
 * Every script gets `home` and the relative path as $1 and $2, and answers through its exit code.
 */
import { PolydevError } from "@polydev/core";
import { outsideHome } from "./sandbox-path.js";

export const FileExit = {
  outsideHome: 91,
  notFound: 92,
  notDirectory: 93,
  isDirectory: 94,
  exists: 95,
  failed: 96,
} as const;

// `resolve` follows every symlink; `resolve_parent` only the parent's and keeps the last name,
// so that a symlink itself can be replaced or removed rather than its target.
const PRELUDE = `set -u
home=$1; rel=$2; shift 2
inside() { case "$1" in "$home"|"$home"/*) return 0;; *) return 1;; esac; }
resolve() { r=$(realpath -m -- "$home/$rel") || exit ${FileExit.failed}; inside "$r" || exit ${FileExit.outsideHome}; p=$r; }
resolve_parent() {
  d=$(realpath -m -- "$(dirname -- "$home/$rel")") || exit ${FileExit.failed}
  inside "$d" || exit ${FileExit.outsideHome}
  if [ "$rel" = "." ]; then p=$d; else p="$d/$(basename -- "$rel")"; fi
}
`;

/** find -printf fields of a FileEntry: type, size, mtime, permission bits, name. */
const ENTRY_FORMAT = "%y\\t%s\\t%T@\\t%m\\t%f\\0";

export const fileScripts = {
  stat: `${PRELUDE}resolve
[ -e "$p" ] || exit ${FileExit.notFound}
exec find "$p" -maxdepth 0 -printf '${ENTRY_FORMAT}'`,

  list: `${PRELUDE}resolve
[ -e "$p" ] || exit ${FileExit.notFound}
[ -d "$p" ] || exit ${FileExit.notDirectory}
exec find "$p" -mindepth 1 -maxdepth 1 -printf '${ENTRY_FORMAT}'`,

  // One marker byte says the checks passed: what follows is the file, whatever its length.
  read: `${PRELUDE}resolve
[ -e "$p" ] || exit ${FileExit.notFound}
[ -d "$p" ] && exit ${FileExit.isDirectory}
[ -r "$p" ] || { echo "permission denied" >&2; exit ${FileExit.failed}; }
printf K
exec cat -- "$p"`,

  // $1 after the shift: octal mode or "-". The upload goes to a temporary name and is renamed
  // only once complete: a failed or aborted upload (TERM) leaves no half file under either name.
  // cat runs in the background and the shell waits for it, because a shell runs its traps only
  // between commands: `wait` is interrupted by the TERM, a foreground cat would not be. (Its
  // stdin goes through fd 3: a background command's stdin is /dev/null otherwise.)
  write: `${PRELUDE}resolve_parent
[ -d "$p" ] && exit ${FileExit.isDirectory}
d=$(dirname -- "$p")
mkdir -p -- "$d" 2>/dev/null || exit ${FileExit.notDirectory}
t="$d/.polydev-upload-$$"
trap 'rm -f -- "$t"' EXIT
trap 'kill $c 2>/dev/null; exit ${FileExit.failed}' HUP INT TERM
exec 3<&0
cat > "$t" <&3 3<&- &
c=$!
exec 3<&-
wait $c || exit ${FileExit.failed}
if [ "$1" != "-" ]; then chmod "$1" "$t" || exit ${FileExit.failed}
elif [ -f "$p" ]; then chmod --reference="$p" "$t" 2>/dev/null; fi
mv -f -- "$t" "$p" || exit ${FileExit.failed}
wc -c < "$p"`,

  mkdir: `${PRELUDE}resolve
if [ "$1" = "parents" ]; then
  [ -d "$p" ] && exit 0
  mkdir -p -- "$p" 2>/dev/null || exit ${FileExit.notDirectory}
  exit 0
fi
[ -e "$p" ] && exit ${FileExit.exists}
[ -d "$(dirname -- "$p")" ] || exit ${FileExit.notFound}
mkdir -- "$p" || exit ${FileExit.failed}`,

  remove: `${PRELUDE}resolve_parent
[ "$p" = "$home" ] && exit ${FileExit.outsideHome}
[ -e "$p" ] || [ -L "$p" ] || exit ${FileExit.notFound}
if [ -d "$p" ] && [ ! -L "$p" ]; then
  if [ "$1" = "recursive" ]; then rm -rf -- "$p" || exit ${FileExit.failed}
  else rmdir -- "$p" 2>/dev/null || exit ${FileExit.exists}; fi
else rm -f -- "$p" || exit ${FileExit.failed}; fi`,

  // $1 after the shift: the destination. Both ends are names themselves (resolve_parent); -T so
  // that an existing directory at the destination is replaced (when empty), not moved into. A
  // destination of the other kind (file/directory) is taken: conflict, as rename(2) says.
  rename: `${PRELUDE}resolve_parent
[ "$p" = "$home" ] && exit ${FileExit.outsideHome}
[ -e "$p" ] || [ -L "$p" ] || exit ${FileExit.notFound}
from=$p; rel=$1
resolve_parent
[ "$p" = "$home" ] && exit ${FileExit.outsideHome}
[ -d "$(dirname -- "$p")" ] || exit ${FileExit.notFound}
isdir() { [ -d "$1" ] && [ ! -L "$1" ]; }
if [ -e "$p" ] || [ -L "$p" ]; then
  if isdir "$p"; then isdir "$from" && [ -z "$(ls -A -- "$p" 2>/dev/null)" ] || exit ${FileExit.exists}
  elif isdir "$from"; then exit ${FileExit.exists}; fi
fi
[ "$from" = "$p" ] && exit 0
mv -fT -- "$from" "$p" || exit ${FileExit.failed}`,

  // For watch: one record per entry below the path, bounded in depth and count so that a huge
  // tree costs a bounded poll.
  snapshot: `${PRELUDE}resolve
[ -e "$p" ] || exit ${FileExit.notFound}
[ -d "$p" ] || exit ${FileExit.notDirectory}
cd "$p" && find . -mindepth 1 -maxdepth 6 -printf '%y\\t%s\\t%T@\\t%P\\0' 2>/dev/null | head -z -n 20000`,
} as const;

export type FileScript = keyof typeof fileScripts;

export function fileScriptError(exitCode: number | null, path: string, stderr: string): PolydevError {
  switch (exitCode) {
    case FileExit.outsideHome:
      return outsideHome(path);
    case FileExit.notFound:
      return new PolydevError("not_found", `"${path}" does not exist`, { details: { path } });
    case FileExit.notDirectory:
      return new PolydevError("invalid_request", `"${path}" (or a parent of it) is not a directory`, {
        details: { path },
      });
    case FileExit.isDirectory:
      return new PolydevError("invalid_request", `"${path}" is a directory`, { details: { path } });
    case FileExit.exists:
      return new PolydevError("conflict", `"${path}" already exists or is a directory that is not empty`, {
        details: { path },
      });
    default: {
      const reason = stderr.trim().slice(0, 500);
      return new PolydevError(
        "command_failed",
        `the file operation on "${path}" failed${reason.length > 0 ? `: ${reason}` : ""}`,
        { details: { path, exitCode } },
      );
    }
  }
}
