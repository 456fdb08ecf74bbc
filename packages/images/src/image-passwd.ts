/**
 * A user of an image, looked up in the image's own /etc/passwd: the top-most layer that has one
 * (a layer's copy replaces those below it). Read as text, never through a symlink (a layer's
 * /etc or /etc/passwd could point at a host file), and at most 64 KiB. Drivers use it to find
 * where a user's commands start and who they run as; no NSS, nothing of the host's.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from "node:fs";
import { join } from "node:path";

export interface ImagePasswdEntry {
  uid: number;
  gid: number;
  /** As written in the file (may be empty or relative in a broken image). */
  home: string;
}

/** `user` is a name or a numeric uid; undefined when the image's passwd does not list it (or it has none). */
export function imagePasswdEntry(user: string, layers: readonly string[]): ImagePasswdEntry | undefined {
  const numeric = /^[0-9]+$/.test(user);
  for (const layer of [...layers].reverse()) {
    const text = readSmallFile(join(layer, "etc", "passwd"));
    if (text === undefined) continue;
    for (const line of text.split("\n")) {
      const fields = line.split(":");
      if (fields.length < 7) continue;
      if (fields[0] === user || (numeric && fields[2] === user)) {
        return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] ?? "" };
      }
    }
    return undefined;
  }
  return undefined;
}

function readSmallFile(path: string): string | undefined {
  let fd: number | undefined;
  try {
    if (lstatSync(join(path, "..")).isSymbolicLink()) return undefined;
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return undefined;
    const buffer = Buffer.alloc(64 * 1024);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, length).toString("utf8");
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
