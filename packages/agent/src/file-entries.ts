import { posix } from "node:path";
import type { FileEntry, FileType } from "@polydev/core";

const TYPES: Record<string, FileType> = { f: "file", d: "directory", l: "symlink" };

/** Parses `find -printf '%y\t%s\t%T@\t%m\t%f\0'` records into entries relative to the home. */
export function parseEntries(output: Buffer, basePath: string): FileEntry[] {
  const entries: FileEntry[] = [];
  for (const record of output.toString("utf8").split("\0")) {
    if (record.length === 0) continue;
    const [type = "", size = "0", mtime = "0", mode = "0", ...nameParts] = record.split("\t");
    const name = nameParts.join("\t");
    entries.push({
      name,
      path: posix.join(basePath, name),
      type: TYPES[type] ?? "other",
      sizeBytes: Number(size),
      modifiedAt: Math.round(Number(mtime) * 1000),
      mode: Number.parseInt(mode, 8),
    });
  }
  return entries;
}

/** name → "size:mtime" for change detection. */
export function parseSnapshot(output: Buffer): Map<string, string> {
  const snapshot = new Map<string, string>();
  for (const record of output.toString("utf8").split("\0")) {
    if (record.length === 0) continue;
    const [name = "", size = "", mtime = ""] = record.split("\t");
    snapshot.set(name, `${size}:${mtime}`);
  }
  return snapshot;
}
