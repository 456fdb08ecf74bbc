/**
 * Writing layer directories: archive owners applied after an unpack, and the files of a Dockerfile
 * COPY/ADD step. Layer directories are stored unshifted (uid 0 is the image's root) under root-only
 * parents, so the owners written here are the image's own.
 */
import { constants } from "node:fs";
import { chmod, copyFile, lchown, lstat, mkdir, symlink } from "node:fs/promises";
import { join, posix } from "node:path";
import { PolydevError } from "@polydev/core";
import type { ContextFile, CopyStep } from "@polydev/images";

/** Records the owners an unpack reports, to apply them once it is complete. */
export class OwnerLog {
  readonly owners = new Map<string, [number, number]>();
  readonly onOwner = (path: string, uid: number, gid: number): void => {
    this.owners.set(path, [uid, gid]);
  };

  /** lchown of each recorded path (gone ones skipped: a later layer's whiteout removed them). */
  async apply(dir: string): Promise<void> {
    for (const [path, [uid, gid]] of this.owners) await chownKeepingMode(join(dir, path), uid, gid);
  }
}

/** chown clears setuid/setgid on regular files; they are the image's own and put back. */
async function chownKeepingMode(path: string, uid: number, gid: number): Promise<void> {
  let stats: import("node:fs").Stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  if (stats.uid === uid && stats.gid === gid) return;
  await lchown(path, uid, gid);
  if (stats.isFile() && (stats.mode & 0o6000) !== 0) await chmod(path, stats.mode & 0o7777);
}

/** A numeric `--chown=uid[:gid]`; names would need the image's passwd file, which is not read. */
export function parseChown(chown: string | undefined, line: number): [number, number] {
  if (chown === undefined) return [0, 0];
  const match = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(chown);
  const uid = Number(match?.[1]);
  const gid = match?.[2] === undefined ? uid : Number(match[2]);
  if (!match || uid > 65535 || gid > 65535) {
    throw new PolydevError(
      "invalid_request",
      `Dockerfile line ${line}: --chown=${chown}: give numeric ids below 65536 (uid or uid:gid)`,
      { details: { line } },
    );
  }
  return [uid, gid];
}

function parseChmod(chmod: string | undefined, line: number): number | undefined {
  if (chmod === undefined) return undefined;
  if (!/^[0-7]{3,4}$/.test(chmod)) {
    throw new PolydevError(
      "invalid_request",
      `Dockerfile line ${line}: --chmod=${chmod}: give octal digits`,
      {
        details: { line },
      },
    );
  }
  return Number.parseInt(chmod, 8);
}

/**
 * Creates `parts` under `root` one component at a time, never through a symlink (a link the step
 * itself made must not lead a later file out of the layer).
 */
async function mkdirInside(root: string, parts: readonly string[], owner: [number, number]): Promise<string> {
  let path = root;
  for (const part of parts) {
    path = join(path, part);
    try {
      await mkdir(path, { mode: 0o755 });
      await lchown(path, owner[0], owner[1]);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      if (!(await lstat(path)).isDirectory()) {
        throw new PolydevError(
          "invalid_request",
          `COPY: /${parts.join("/")} is not a directory in this step`,
        );
      }
    }
  }
  return path;
}

/**
 * Whether `parts` names a directory in the image made of `layers` (base first): the topmost layer
 * holding the path decides. Each component is lstat-ed, never followed: a path through a symlink
 * counts as "not a directory" (the file then lands under the name itself, as written).
 */
export async function isDirectoryBelow(
  layers: readonly string[],
  parts: readonly string[],
): Promise<boolean> {
  if (parts.length === 0) return true;
  for (const layer of [...layers].reverse()) {
    let path = layer;
    let found: boolean | undefined;
    for (const [index, part] of parts.entries()) {
      path = join(path, part);
      const stats = await lstat(path).catch(() => undefined);
      if (!stats) break;
      if (index === parts.length - 1) found = stats.isDirectory();
      else if (!stats.isDirectory()) {
        found = false;
        break;
      }
    }
    if (found !== undefined) return found;
  }
  return false;
}

function components(absolute: string): string[] {
  return posix
    .normalize(absolute)
    .split("/")
    .filter((part) => part !== "" && part !== ".");
}

/**
 * Writes a COPY/ADD step's files into the empty layer directory `dir`: each file read from
 * `contextDir` without following links (contextFiles resolved them), owners per --chown (default
 * 0:0), modes per --chmod or the context's. Returns the bytes written.
 */
export async function writeCopyLayer(
  dir: string,
  contextDir: string,
  step: CopyStep,
  files: readonly ContextFile[],
  lowerLayers: readonly string[] = [],
): Promise<number> {
  const owner = parseChown(step.chown, step.line);
  const mode = parseChmod(step.chmod, step.line);
  const dest = components(step.dest);
  // Docker: several sources, a directory source or a trailing slash make the destination a directory.
  // So does a destination that is a directory in the image already (`COPY run.sh /usr/local/bin`).
  const single =
    files.length === 1 &&
    files[0]?.type === "file" &&
    !step.destIsDir &&
    !(await isDirectoryBelow(lowerLayers, dest));
  let bytes = 0;
  for (const file of files) {
    const target = single ? dest : [...dest, ...components(`/${file.target}`)];
    const name = target.at(-1);
    if (name === undefined) {
      if (file.type !== "directory") {
        throw new PolydevError("invalid_request", `Dockerfile line ${step.line}: cannot copy a file onto /`);
      }
      continue;
    }
    const parent = await mkdirInside(dir, target.slice(0, -1), owner);
    const path = join(parent, name);
    if (file.type === "directory") {
      await mkdirInside(dir, target, owner);
      await chmod(path, mode ?? file.mode & 0o7777);
    } else if (file.type === "symlink") {
      await symlink(file.linkTarget ?? "", path);
      await lchown(path, owner[0], owner[1]);
    } else {
      // contextFiles resolved the source to a regular file; EXCL never writes through a link made before.
      await copyFile(join(contextDir, file.contextPath), path, constants.COPYFILE_EXCL);
      bytes += file.size;
      await lchown(path, owner[0], owner[1]);
      await chmod(path, mode ?? file.mode & 0o7777);
    }
  }
  return bytes;
}
