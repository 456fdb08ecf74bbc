/**
 * Who the container's process runs as: the image's default user, resolved in the image's own
 * /etc/passwd (see imagePasswdEntry: the top-most layer that has one, never through a symlink).
 */
import { PolydevError } from "@polydev/core";
import { imagePasswdEntry } from "@polydev/images";

export interface ImageUser {
  uid: number;
  gid: number;
  home: string;
}

export function imageUser(user: string | undefined, layers: readonly string[]): ImageUser {
  const name = user ?? "root";
  const entry = imagePasswdEntry(name, layers);
  if (entry !== undefined) {
    return { uid: entry.uid, gid: entry.gid, home: entry.home.startsWith("/") ? entry.home : "/" };
  }
  if (/^[0-9]+$/.test(name)) return { uid: Number(name), gid: Number(name), home: "/" };
  if (name === "root") return { uid: 0, gid: 0, home: "/root" };
  throw new PolydevError("invalid_request", `the image has no user ${name} in its /etc/passwd`);
}
