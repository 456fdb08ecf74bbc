import { posix } from "node:path";
import type { FileEntry, FileType } from "@polydev/core";

const TYPES: Record<string, FileType> = { f: "file", d: "directory", l: "symlink" };

/** Parses `find -printf '%y\t%s\t%T@\t%m\t%f\0'` records; paths are joined to `directory`. */
export function parseEntries(output: Buffer, directory: string): FileEntry[] {
  const entries: FileEntry[] = [];
  for (const record of output.toString("utf8").split("\0")) {
    if (record.length === 0) continue;
    const [type = "", size = "0", mtime = "0", mode = "0", ...nameParts] = record.split("\t");
    const name = nameParts.join("\t");
    entries.push({
      name,
      path: posix.join(directory, name),
      type: TYPES[type] ?? "other",
      sizeBytes: Number(size),
      modifiedAt: Math.round(Number(mtime) * 1000),
      mode: Number.parseInt(mode, 8),
    });
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Parses the watch snapshot (`%y\t%s\t%T@\t%P\0`) into relative path → "type size mtime". */
export function parseSnapshot(output: Buffer): Map<string, string> {
  const snapshot = new Map<string, string>();
  for (const record of output.toString("utf8").split("\0")) {
    const [type, size, mtime, ...pathParts] = record.split("\t");
    if (pathParts.length === 0) continue;
    snapshot.set(pathParts.join("\t"), `${type} ${size} ${mtime}`);
  }
  return snapshot;
}
