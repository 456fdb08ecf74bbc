/**
 * Who the container's process runs as: the image's default user, resolved in the image's own
 * /etc/passwd (the top-most layer that has one). Read without following symlinks (a layer's
 * /etc/passwd could point at a host file) and at most 64 KiB.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";

export interface ImageUser {
  uid: number;
  gid: number;
  home: string;
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

export function imageUser(user: string | undefined, layers: readonly string[]): ImageUser {
  const name = user ?? "root";
  const numeric = /^[0-9]+$/.test(name) ? Number(name) : undefined;
  for (const layer of [...layers].reverse()) {
    const text = readSmallFile(join(layer, "etc", "passwd"));
    if (text === undefined) continue;
    for (const line of text.split("\n")) {
      const fields = line.split(":");
      if (fields.length < 7) continue;
      const uid = Number(fields[2]);
      if (fields[0] === name || (numeric !== undefined && uid === numeric)) {
        const home = fields[5] ?? "";
        return { uid, gid: Number(fields[3]), home: home.startsWith("/") ? home : "/" };
      }
    }
    break;
  }
  if (numeric !== undefined) return { uid: numeric, gid: numeric, home: "/" };
  if (name === "root") return { uid: 0, gid: 0, home: "/root" };
  throw new PolydevError("invalid_request", `the image has no user ${name} in its /etc/passwd`);
}
