/**
 * The image store's storage (ImageStorage) on the host's storage pool, which also holds the
 * sandboxes' disks. Three kinds of source reach `cloneDir`:
 * - a directory of the pool (a layer): a reflink copy, as the pool does it;
 * - the `upper` directory of a disk (a sandbox's snapshot or a RUN step's changes), which lives
 *   in a volume of its own (an ext4 file system in the pool): the whole volume is cloned, in
 *   constant time, and the layer is its `upper` directory; removing the layer removes the volume;
 * - a directory outside the pool (the default image's root file system in the host-wide build
 *   cache): copied once, byte for byte, with owners, modes and extended attributes.
 */
import { execFile } from "node:child_process";
import { isAbsolute, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { PolydevError } from "@polydev/core";
import type { StoragePool } from "@polydev/images";
import type { ImageStorage } from "./image-ports.js";

const run = promisify(execFile);
const UPPER = "upper";

export function poolImageStorage(pool: StoragePool): ImageStorage {
  const insidePool = (path: string): string | undefined => {
    const rel = relative(resolve(pool.root), resolve(path));
    return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? undefined : rel;
  };
  /** The volume whose `upper` directory `rel` is, if it is one. */
  const volumeOfUpper = async (rel: string): Promise<string | undefined> => {
    const parts = rel.split("/");
    if (parts.length < 2 || parts.at(-1) !== UPPER) return undefined;
    const volume = parts.slice(0, -1).join("/");
    return (await pool.limit(volume).catch(() => null)) === null ? undefined : volume;
  };
  return {
    root: pool.root,
    createDir: (rel, limitBytes) => pool.createDir(rel, limitBytes),
    async cloneDir(from, to, limitBytes) {
      const fromRel = insidePool(from);
      if (fromRel === undefined) {
        const dir = await pool.createDir(to, limitBytes);
        // Host paths the server chose (its cache, its pool); nothing of a request's.
        await run("/bin/cp", ["-a", "--preserve=all", "--no-target-directory", `${resolve(from)}/.`, dir], {
          env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
        }).catch((error: unknown) => {
          throw new PolydevError("internal", `could not copy ${from} into the storage pool`, {
            cause: error,
          });
        });
        return dir;
      }
      const volume = await volumeOfUpper(fromRel);
      if (volume !== undefined) {
        const dir = await pool.cloneDir(volume, to, null);
        return join(dir, UPPER);
      }
      return pool.cloneDir(fromRel, to, limitBytes);
    },
    async removeDir(rel) {
      await pool.removeDir((await volumeOfUpper(rel)) ?? rel);
    },
  };
}
