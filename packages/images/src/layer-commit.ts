import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { type FileHandle, lstat, open, readdir, readlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { PolydevError } from "@polydev/core";
import { type Headers, pack } from "tar-stream";
import type { BlobStore } from "./blob-store.js";

/** The OCI media type of what `commitLayer` writes. */
export const LAYER_COMMIT_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip";

/** Where the tools live; a fixed argv, never a shell. */
const GETFATTR = "/usr/bin/getfattr";
/** overlayfs marks an opaque directory with one of these (`user.` when mounted with userxattr). */
const OPAQUE_ATTRIBUTE_PATTERN = "^(trusted|user)\\.overlay\\.opaque$";
/** What getfattr may print: a line or two per opaque directory. */
const GETFATTR_OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024;
/** Largest value the ustar uid/gid fields (7 octal digits) hold; past it a PAX record carries it. */
const USTAR_MAX_ID = 0o7777777;
/** tar-stream 2.x writes sizes in the 11-digit ustar field only (8 GiB - 1). */
const USTAR_MAX_SIZE = 0o77777777777;
const EPOCH = new Date(0);

export interface CommitLayerOptions {
  /** Most bytes of the uncompressed tar (file contents and headers); more is `payload_too_large`. */
  maxBytes: number;
  /** Most tar entries (whiteouts included); more is `payload_too_large`. */
  maxEntries: number;
  signal?: AbortSignal;
  /**
   * Says whether a directory of the upper dir is opaque. Default: reads `trusted.overlay.opaque`
   * then `user.overlay.opaque` with `/usr/bin/getfattr` (Node has no xattr API); when the tool is
   * missing every directory is taken as not opaque and `opaqueCheck` reports `"unavailable"`.
   */
  isOpaque?: (absolutePath: string) => Promise<boolean>;
}

export interface CommitLayerResult {
  /** sha256 of the gzip blob, now in the store. */
  digest: string;
  /** Size of the gzip blob. */
  size: number;
  /** sha256 of the uncompressed tar (the image config's `rootfs.diff_ids` entry). */
  diffId: string;
  mediaType: typeof LAYER_COMMIT_MEDIA_TYPE;
  /** Tar entries written (whiteouts included). */
  entries: number;
  /** Whiteouts (`.wh.<name>`) and opaque markers (`.wh..wh..opq`) written. */
  whiteouts: number;
  /** Sockets, FIFOs, block devices and non-whiteout character devices: not stored, counted here. */
  skippedSpecialFiles: number;
  /** Names beginning `.wh.` in the upper dir: they would read as whiteouts, so they are not stored. */
  skippedReservedNames: number;
  /** "getfattr" when opaque directories were looked for, "unavailable" when the tool is missing. */
  opaqueCheck: "getfattr" | "unavailable" | "custom";
}

type Planned =
  | { kind: "directory"; name: string; stats: Stats }
  | { kind: "opaque"; name: string; stats: Stats }
  | { kind: "whiteout"; name: string; stats: Stats }
  | { kind: "file"; name: string; path: string; stats: Stats }
  | { kind: "link"; name: string; target: string; stats: Stats }
  | { kind: "symlink"; name: string; target: string; stats: Stats };

/**
 * Turns an overlayfs upper directory (what a RUN step or a sandbox changed on top of its image) into
 * an OCI layer: a deterministic gzip tar (entries depth-first in byte order of names, mtime 0, uid
 * and gid from the file system, no atime/ctime, PAX records only where ustar cannot hold a value)
 * written into `store`. Overlay whiteouts (a 0:0 character device) become `.wh.<name>`; an opaque
 * directory gets `.wh..wh..opq`. Regular files, directories, symlinks (target text as is), hard
 * links within the upper dir and modes (setuid included) are kept; other special files are skipped
 * and counted.
 *
 * Safety: the walk uses lstat and never follows a symlink; a file is opened with O_NOFOLLOW and its
 * inode must still be the one the walk saw, so a path swapped for a link mid-commit is refused
 * (`conflict`) rather than read. The upper dir should be quiescent (its sandbox stopped).
 */
export async function commitLayer(
  upperDir: string,
  store: BlobStore,
  options: CommitLayerOptions,
): Promise<CommitLayerResult> {
  const root = resolve(upperDir);
  const rootStats = await lstat(root);
  if (!rootStats.isDirectory()) {
    throw new PolydevError("invalid_request", `the upper dir ${root} is not a directory`);
  }
  const opaque = options.isOpaque
    ? { check: options.isOpaque, kind: "custom" as const }
    : await getfattrReader(root, options.signal);
  const plan: Planned[] = [];
  const counts = { skippedSpecialFiles: 0, skippedReservedNames: 0, whiteouts: 0, fileBytes: 0 };
  const firstPathOfInode = new Map<string, string>();

  const add = (entry: Planned): void => {
    if (plan.length >= options.maxEntries) {
      throw new PolydevError("payload_too_large", `the layer has more than ${options.maxEntries} entries`, {
        details: { maxEntries: options.maxEntries },
      });
    }
    plan.push(entry);
  };

  const walk = async (directory: string, prefix: string): Promise<void> => {
    options.signal?.throwIfAborted();
    // Sorted by the name each entry gets in the tar (a whiteout's is `.wh.<name>`).
    const children = await Promise.all(
      (await readdir(directory)).map(async (name) => {
        const stats = await lstat(join(directory, name));
        const whiteout = stats.isCharacterDevice() && stats.rdev === 0;
        return { name, stats, whiteout, sortKey: whiteout ? `.wh.${name}` : name };
      }),
    );
    children.sort((a, b) => byteOrder(a.sortKey, b.sortKey));
    for (const { name, stats, whiteout } of children) {
      const path = join(directory, name);
      const tarName = `${prefix}${name}`;
      if (whiteout) {
        add({ kind: "whiteout", name: `${prefix}.wh.${name}`, stats });
        counts.whiteouts += 1;
        continue;
      }
      if (name.startsWith(".wh.")) {
        counts.skippedReservedNames += 1;
        continue;
      }
      if (stats.isDirectory()) {
        add({ kind: "directory", name: `${tarName}/`, stats });
        if (await opaque.check(path)) {
          add({ kind: "opaque", name: `${tarName}/.wh..wh..opq`, stats });
          counts.whiteouts += 1;
        }
        await walk(path, `${tarName}/`);
      } else if (stats.isSymbolicLink()) {
        add({ kind: "symlink", name: tarName, target: await readlink(path), stats });
      } else if (stats.isFile()) {
        const inode = `${stats.dev}:${stats.ino}`;
        const first = stats.nlink > 1 ? firstPathOfInode.get(inode) : undefined;
        if (first !== undefined) {
          add({ kind: "link", name: tarName, target: first, stats });
          continue;
        }
        if (stats.nlink > 1) firstPathOfInode.set(inode, tarName);
        if (stats.size > USTAR_MAX_SIZE) throw tooLarge(options.maxBytes);
        counts.fileBytes += stats.size;
        if (counts.fileBytes > options.maxBytes) throw tooLarge(options.maxBytes);
        add({ kind: "file", name: tarName, path, stats });
      } else {
        counts.skippedSpecialFiles += 1;
      }
    }
  };
  await walk(root, "");

  const archive = pack();
  const tarHash = new CountingHash(options.maxBytes);
  // Stops the entry writer when the stream below it fails (a limit, the store), so it never waits
  // on a pack nobody reads.
  const failed = new AbortController();
  const stop = options.signal ? AbortSignal.any([options.signal, failed.signal]) : failed.signal;
  const writing = (async () => {
    try {
      for (const entry of plan) {
        stop.throwIfAborted();
        await raceAbort(writeEntry(archive, entry, stop), stop);
      }
      archive.finalize();
    } catch (error) {
      archive.destroy(error as Error);
      throw error;
    }
  })();
  const gzip = createGzip({ level: 6 });
  // gzip's worst case (stored blocks) adds 5 bytes per 16 KiB block, plus its header and trailer.
  const blobLimit = options.maxBytes + Math.ceil(options.maxBytes / 16384) * 5 + 1024;
  const compressed = pipeline(archive, tarHash, gzip);
  const putting = store.put(gzip, { maxBytes: blobLimit, signal: options.signal });
  compressed.catch((error: unknown) => {
    gzip.destroy(error as Error);
    failed.abort(error);
  });
  putting.catch((error: unknown) => failed.abort(error));
  const settled = await Promise.allSettled([writing, compressed, putting]);
  const errors = settled.flatMap((result) =>
    result.status === "rejected" ? [result.reason as unknown] : [],
  );
  if (errors.length > 0) {
    throw errors.find((error) => error instanceof PolydevError) ?? errors[0];
  }
  const put = (settled[2] as PromiseFulfilledResult<Awaited<typeof putting>>).value;
  return {
    digest: put.digest,
    size: put.size,
    diffId: `sha256:${tarHash.digest()}`,
    mediaType: LAYER_COMMIT_MEDIA_TYPE,
    entries: plan.length,
    whiteouts: counts.whiteouts,
    skippedSpecialFiles: counts.skippedSpecialFiles,
    skippedReservedNames: counts.skippedReservedNames,
    opaqueCheck: opaque.kind,
  };
}

function headerOf(entry: Planned): Headers {
  const { stats } = entry;
  const header: Headers = {
    name: entry.name,
    // The type bits ride along (tar-stream masks them to 0o7777): a mode of 0 would otherwise be
    // taken as "unset" and replaced with 0644/0755.
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
    mtime: EPOCH,
  };
  if (stats.uid > USTAR_MAX_ID || stats.gid > USTAR_MAX_ID) {
    header.pax = { uid: String(stats.uid), gid: String(stats.gid) };
  }
  return header;
}

async function writeEntry(
  archive: ReturnType<typeof pack>,
  entry: Planned,
  signal?: AbortSignal,
): Promise<void> {
  const header = headerOf(entry);
  switch (entry.kind) {
    case "directory":
      return addEntry(archive, { ...header, type: "directory", size: 0 });
    case "opaque":
    case "whiteout":
      return addEntry(archive, { ...header, type: "file", size: 0, mode: 0o644, uid: 0, gid: 0, pax: null });
    case "symlink":
      return addEntry(archive, { ...header, type: "symlink", linkname: entry.target, size: 0, mode: 0o777 });
    case "link":
      return addEntry(archive, { ...header, type: "link", linkname: entry.target, size: 0 });
    case "file":
      if (entry.stats.size === 0) return addEntry(archive, { ...header, type: "file", size: 0 });
      return addFile(archive, { ...header, type: "file", size: entry.stats.size }, entry, signal);
  }
}

function addEntry(archive: ReturnType<typeof pack>, header: Headers): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    archive.entry(header, Buffer.alloc(0), (error) => (error ? reject(error) : resolvePromise()));
  });
}

async function addFile(
  archive: ReturnType<typeof pack>,
  header: Headers,
  entry: Extract<Planned, { kind: "file" }>,
  signal?: AbortSignal,
): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(entry.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ELOOP" || code === "ENOENT") {
      throw new PolydevError("conflict", `${entry.name} changed while the layer was committed`);
    }
    throw error;
  }
  try {
    const now = await handle.stat();
    // Still the file the walk saw, unchanged since (a rename over it, a rewrite, a truncation).
    const same =
      now.isFile() &&
      now.ino === entry.stats.ino &&
      now.dev === entry.stats.dev &&
      now.size === entry.stats.size &&
      now.ctimeMs === entry.stats.ctimeMs;
    if (!same) {
      throw new PolydevError("conflict", `${entry.name} changed while the layer was committed`);
    }
    const size = entry.stats.size;
    const done = new Promise<void>((resolvePromise, reject) => {
      const sink = archive.entry(header, undefined, (error) => (error ? reject(error) : resolvePromise()));
      (async () => {
        const buffer = Buffer.alloc(Math.min(Math.max(size, 1), 1 << 20));
        let written = 0;
        while (written < size) {
          signal?.throwIfAborted();
          const { bytesRead } = await handle.read(
            buffer,
            0,
            Math.min(buffer.length, size - written),
            written,
          );
          if (bytesRead === 0) break;
          written += bytesRead;
          const chunk = Buffer.from(buffer.subarray(0, bytesRead));
          if (!sink.write(chunk)) await new Promise((r) => sink.once("drain", r));
        }
        if (written !== size) {
          throw new PolydevError("conflict", `${entry.name} shrank while the layer was committed`);
        }
        sink.end();
      })().catch((error: unknown) => {
        reject(error);
        sink.destroy();
      });
    });
    await done;
  } finally {
    await handle.close();
  }
}

/** Hashes and counts the uncompressed tar on its way to gzip; past `maxBytes` it fails. */
class CountingHash extends Transform {
  private readonly hash = createHash("sha256");
  private bytes = 0;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      callback(tooLarge(this.maxBytes));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  digest(): string {
    return this.hash.digest("hex");
  }
}

function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolvePromise(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function tooLarge(maxBytes: number): PolydevError {
  return new PolydevError("payload_too_large", `the layer is larger than ${maxBytes} bytes`, {
    details: { maxBytes },
  });
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The default opaque-directory check: ONE `getfattr -R` over the upper dir (not a process per
 * directory), so the only argv it gets is the upper dir's own path, chosen by the host; the
 * sandbox's file names come back as its output (octal-escaped, decoded here), never as arguments.
 * It walks physically (`-P -h`: no symlink is followed), runs with an empty environment, and its
 * output is bounded.
 */
async function getfattrReader(
  root: string,
  signal: AbortSignal | undefined,
): Promise<{ check: (path: string) => Promise<boolean>; kind: "getfattr" | "unavailable" }> {
  const output = await new Promise<string | "missing-tool">((resolvePromise, rejectPromise) => {
    execFile(
      GETFATTR,
      ["-R", "-P", "-h", "--absolute-names", "-d", "-m", OPAQUE_ATTRIBUTE_PATTERN, "-e", "text", "--", root],
      {
        encoding: "utf8",
        env: {},
        cwd: "/",
        maxBuffer: GETFATTR_OUTPUT_LIMIT_BYTES,
        timeout: 60_000,
        signal,
      },
      (error, stdout) => {
        if ((error as NodeJS.ErrnoException | null)?.code === "ENOENT") resolvePromise("missing-tool");
        else if ((error as NodeJS.ErrnoException | null)?.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") {
          rejectPromise(
            new PolydevError(
              "payload_too_large",
              "the layer marks too many directories opaque to read them all",
            ),
          );
        } else if (signal?.aborted) rejectPromise(signal.reason);
        // A non-zero exit (an attribute unsupported somewhere) still leaves what it found in stdout.
        else resolvePromise(stdout);
      },
    );
  });
  if (output === "missing-tool") return { kind: "unavailable", check: async () => false };
  const opaque = new Set<string>();
  let file: string | undefined;
  for (const line of output.split("\n")) {
    if (line.startsWith("# file: ")) file = decodeGetfattrName(line.slice("# file: ".length));
    else if (file !== undefined && /^(trusted|user)\.overlay\.opaque="y"$/.test(line)) opaque.add(file);
  }
  return { kind: "getfattr", check: async (path) => opaque.has(path) };
}

/** getfattr writes bytes it would not print (and `\\`) as `\ooo`; back to the path's bytes. */
function decodeGetfattrName(text: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(text, "utf8");
  for (let i = 0; i < raw.length; i++) {
    const octal = raw[i] === 0x5c ? /^[0-7]{3}/.exec(raw.subarray(i + 1, i + 4).toString("latin1")) : null;
    if (octal) {
      bytes.push(Number.parseInt(octal[0], 8));
      i += 3;
    } else bytes.push(raw[i] ?? 0);
  }
  return Buffer.from(bytes).toString("utf8");
}
