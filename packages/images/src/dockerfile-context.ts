import { createHash } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import { join, posix } from "node:path";
import { PolydevError } from "@polydev/core";
import { normalizeContextSource } from "./dockerfile-parse.js";

export interface ContextFileLimits {
  maxFiles: number;
  maxBytes: number;
  signal?: AbortSignal;
}

export interface ContextFile {
  /** Context-relative path as the Dockerfile names it: the source (or glob match), then the path inside. */
  path: string;
  /** Where the entry lands, relative to the destination ("" is the destination itself). */
  target: string;
  /** The source (or glob match) this entry comes from, context-relative, as named (before links). */
  source: string;
  /** Where it was read, context-relative (after following in-context symlinks of the source itself). */
  contextPath: string;
  type: "file" | "directory" | "symlink";
  /** lstat mode, type bits included. */
  mode: number;
  /** sha256 of the content (a file), of the link text (a symlink), of nothing (a directory). */
  sha256: string;
  size: number;
  linkTarget?: string;
}

export interface ContextFilesResult {
  files: ContextFile[];
  bytes: number;
  skippedSpecialFiles: number;
}

const MAX_LINKS = 40;
const EMPTY = `sha256:${createHash("sha256").digest("hex")}`;

function refused(source: string, why: string): PolydevError {
  return new PolydevError("invalid_request", `COPY source ${JSON.stringify(source)} ${why}`, {
    details: { source },
  });
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if (
      (error as NodeJS.ErrnoException).code === "ENOENT" ||
      (error as NodeJS.ErrnoException).code === "ENOTDIR"
    ) {
      return undefined;
    }
    throw error;
  }
}

/**
 * Resolves a context-relative path component by component: directories are entered, a symlink is
 * followed only while its target stays inside the context (relative, never above its root, at most
 * 40 links); an absolute target or one climbing out is refused before anything outside is touched.
 */
async function resolveInContext(root: string, relative: string, source: string, followLast: boolean) {
  const done: string[] = [];
  const todo = relative === "." ? [] : relative.split("/");
  let links = 0;
  let stats: Stats | undefined = await lstat(root);
  while (todo.length > 0) {
    const component = todo.shift() as string;
    if (component === "" || component === ".") continue;
    if (component === "..") {
      if (done.length === 0) throw refused(source, "leads out of the build context");
      done.pop();
      stats = await lstat(join(root, ...done));
      continue;
    }
    if (stats !== undefined && !stats.isDirectory())
      throw refused(source, "does not exist in the build context");
    const path = join(root, ...done, component);
    stats = await lstatOrUndefined(path);
    if (stats === undefined) throw refused(source, "does not exist in the build context");
    if (stats.isSymbolicLink() && (followLast || todo.length > 0)) {
      if (++links > MAX_LINKS) throw refused(source, "has too many levels of symbolic links");
      const target = await readlink(path);
      if (target.startsWith("/")) {
        throw refused(source, `is a symlink to ${JSON.stringify(target)}, outside the build context`);
      }
      todo.unshift(...target.split("/"));
      stats = await lstat(join(root, ...done));
      continue;
    }
    done.push(component);
  }
  return { path: done.join("/") || ".", stats: stats as Stats };
}

const GLOB = /[*?[\]]/;

function globToRegExp(pattern: string): RegExp {
  let source = "^";
  for (const c of pattern) {
    if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else source += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`${source}$`, "s");
}

/**
 * The files COPY/ADD `sources` name in an extracted build context, each hashed: directories are
 * walked (their symlinks recorded as links, never followed), `*` and `?` may appear in the last
 * component. Nothing outside `contextDir` is opened or listed.
 */
export async function contextFiles(
  contextDir: string,
  sources: readonly string[],
  limits: ContextFileLimits,
): Promise<ContextFilesResult> {
  const files: ContextFile[] = [];
  let bytes = 0;
  let skippedSpecialFiles = 0;
  const seen = new Set<string>();

  const count = () => {
    if (files.length >= limits.maxFiles) {
      throw new PolydevError("payload_too_large", `the COPY sources hold more than ${limits.maxFiles} files`);
    }
  };

  const hashFile = async (absolute: string, stats: Stats): Promise<string> => {
    if (bytes + stats.size > limits.maxBytes) {
      throw new PolydevError("payload_too_large", `the COPY sources hold more than ${limits.maxBytes} bytes`);
    }
    const handle = await open(absolute, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const opened = await handle.stat();
      if (!opened.isFile() || opened.ino !== stats.ino || opened.dev !== stats.dev) {
        throw new PolydevError("conflict", `build context file ${absolute} changed while it was read`);
      }
      const hash = createHash("sha256");
      const buffer = Buffer.alloc(64 * 1024);
      for (;;) {
        limits.signal?.throwIfAborted();
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        bytes += bytesRead;
        if (bytes > limits.maxBytes) {
          throw new PolydevError(
            "payload_too_large",
            `the COPY sources hold more than ${limits.maxBytes} bytes`,
          );
        }
        hash.update(buffer.subarray(0, bytesRead));
      }
      return `sha256:${hash.digest("hex")}`;
    } finally {
      await handle.close();
    }
  };

  const add = async (
    source: string,
    path: string,
    contextPath: string,
    target: string,
    stats: Stats,
  ): Promise<void> => {
    const key = `${path}\0${target}`;
    if (seen.has(key)) return;
    seen.add(key);
    const absolute = join(contextDir, contextPath);
    if (stats.isFile()) {
      count();
      const sha256 = await hashFile(absolute, stats);
      files.push({
        path,
        target,
        source,
        contextPath,
        type: "file",
        mode: stats.mode,
        sha256,
        size: stats.size,
      });
    } else if (stats.isSymbolicLink()) {
      count();
      const linkTarget = await readlink(absolute);
      const sha256 = `sha256:${createHash("sha256").update(linkTarget).digest("hex")}`;
      files.push({
        path,
        target,
        source,
        contextPath,
        type: "symlink",
        mode: stats.mode,
        sha256,
        size: 0,
        linkTarget,
      });
    } else if (stats.isDirectory()) {
      count();
      files.push({
        path,
        target,
        source,
        contextPath,
        type: "directory",
        mode: stats.mode,
        sha256: EMPTY,
        size: 0,
      });
      const names = (await readdir(absolute)).sort();
      for (const name of names) {
        limits.signal?.throwIfAborted();
        const child = contextPath === "." ? name : `${contextPath}/${name}`;
        const childStats = await lstat(join(contextDir, child));
        await add(
          source,
          path === "." ? name : `${path}/${name}`,
          child,
          target === "" ? name : `${target}/${name}`,
          childStats,
        );
      }
    } else skippedSpecialFiles++;
  };

  for (const raw of sources) {
    const source = normalizeContextSource(raw);
    if (source === undefined) throw refused(raw, "leads out of the build context");
    const slash = source.lastIndexOf("/");
    const parent = slash < 0 ? "." : source.slice(0, slash);
    const last = slash < 0 ? source : source.slice(slash + 1);
    if (GLOB.test(parent))
      throw refused(raw, "has a wildcard before its last component; only the last may have * or ?");
    if (/[[\]]/.test(last))
      throw refused(raw, "has [ ] character classes, which are not supported; use * or ?");
    // a directory source copies its contents (path ""), a file or link keeps its name
    const name = (relative: string, stats: Stats) => (stats.isDirectory() ? "" : posix.basename(relative));
    if (GLOB.test(last)) {
      const directory = await resolveInContext(contextDir, parent, raw, true);
      if (!directory.stats.isDirectory()) throw refused(raw, "does not exist in the build context");
      const pattern = globToRegExp(last);
      const matches = (await readdir(join(contextDir, directory.path))).filter((n) => pattern.test(n)).sort();
      if (matches.length === 0) throw refused(raw, "matches no file in the build context");
      for (const match of matches) {
        const named = directory.path === "." ? match : `${directory.path}/${match}`;
        const resolved = await resolveInContext(contextDir, named, raw, true);
        // a directory matched by a glob is copied as its contents too (Docker does the same)
        await add(named, named, resolved.path, name(named, resolved.stats), resolved.stats);
      }
    } else {
      const resolved = await resolveInContext(contextDir, source, raw, true);
      await add(source, source, resolved.path, name(source, resolved.stats), resolved.stats);
    }
  }
  return { files, bytes, skippedSpecialFiles };
}
