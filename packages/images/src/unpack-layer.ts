import { constants } from "node:fs";
import { link, lstat, mkdir, open, readdir, rm, symlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pipeline, Readable, Transform } from "node:stream";
import * as zlib from "node:zlib";
import { PolydevError } from "@polydev/core";
import { type Extract, extract, type Headers } from "tar-stream";
import { layerPathComponents, lstatOrNull, parentsAreDirectories, resolveParent } from "./layer-path.js";
import { TarStreamGuard } from "./tar-stream-guard.js";

export const DEFAULT_MAX_PATH_LENGTH = 4096;

/**
 * Room allowed in the (decompressed) tar stream beyond the file bytes themselves: per entry a header,
 * padding and PAX or GNU long-name records, plus the end-of-archive blocks and a writer's record
 * padding. Past it the stream is a bomb of metadata or zero blocks, which write no file bytes but
 * would otherwise be read for ever.
 */
const TAR_OVERHEAD_PER_ENTRY_BYTES = 16 * 1024;
const TAR_OVERHEAD_FIXED_BYTES = 1024 * 1024;

/**
 * Largest PAX or GNU long-name record. tar-stream holds such a record in memory whole, so without a
 * cap one record the size of the stream limit would be buffered; Go's archive/tar uses the same 1 MiB.
 */
export const MAX_METADATA_RECORD_BYTES = 1024 * 1024;
const METADATA_TYPES: ReadonlySet<unknown> = new Set([
  "pax-header",
  "pax-global-header",
  "gnu-long-path",
  "gnu-long-link-path",
]);

const WHITEOUT_PREFIX = ".wh.";
const OPAQUE_WHITEOUT = ".wh..wh..opq";

export interface UnpackLayerOptions {
  /** Most file bytes written in total; more is `payload_too_large`. */
  maxBytes: number;
  /** Most archive entries (whiteouts and skipped entries included); more is `payload_too_large`. */
  maxEntries: number;
  /** Longest entry path or link target in bytes; default 4096 (PATH_MAX). */
  maxPathLength?: number;
  signal?: AbortSignal;
  /**
   * Told the uid and gid the archive gives each created path (relative, `/`-separated, its parents
   * resolved through symlinks as the sandbox sees them, so `usr/lib/x` for `lib/x`). Files are
   * always owned by the unpacking process: ownership belongs to the sandbox's user namespace and is
   * applied there (or recorded), never as host uids.
   */
  onOwner?: (path: string, uid: number, gid: number) => void;
}

export interface UnpackLayerResult {
  entries: number;
  /** File bytes written. */
  bytes: number;
  /** Whiteouts and opaque whiteouts applied. */
  whiteouts: number;
  /** Character and block devices and FIFOs: never created on the host, skipped and counted here. */
  skippedSpecialFiles: number;
  /** PAX extended attributes (file capabilities, SELinux labels, ACLs): never applied on the host. */
  ignoredExtendedAttributes: number;
}

/**
 * Unpacks one untrusted OCI or docker layer (a tar, plain or gzip) into `targetDir`, applying its
 * whiteouts to what `targetDir` already holds.
 *
 * Safety: nothing is written outside `targetDir` (`..` and absolute entry names are refused with
 * `invalid_request`; symlinks among an entry's, a hard link target's or a whiteout's parents are
 * followed with `targetDir` as `/`, as the sandbox will see them, so no link leads out; at most 40
 * links a path); symlinks are created with their target text as is, and an entry's own last
 * component is never followed; no device, FIFO or socket is created; modes (setuid included) are
 * kept but ownership is only reported through `onOwner`; extended attributes are ignored.
 *
 * On failure (a limit is `payload_too_large`, a corrupt or truncated archive `invalid_request`, an
 * abort the signal's reason) the input is destroyed and the partial output is left in `targetDir`:
 * the caller discards it (unpacking into a prepared copy-on-write snapshot it commits only on success).
 * The promise settles only once no write is in flight, so removal can start at once.
 */
export async function unpackLayer(
  input: Readable,
  targetDir: string,
  options: UnpackLayerOptions,
): Promise<UnpackLayerResult> {
  options.signal?.throwIfAborted();
  const root = resolve(targetDir);
  const rootStats = await lstat(root);
  if (!rootStats.isDirectory()) {
    throw new PolydevError("invalid_request", `the layer target ${root} is not a directory`);
  }
  const { head, stream } = await peekBytes(input, 4, options.signal);
  const decompressor = decompressorFor(head);
  const unpacker = new LayerUnpacker(root, options);
  return unpacker.run(stream, decompressor);
}

function decompressorFor(head: Buffer): Transform | null {
  if (head[0] === 0x1f && head[1] === 0x8b) return zlib.createGunzip();
  if (head.readUInt32LE(0) === 0xfd2fb528) {
    // Node 20 has no zstd; Node >= 22.15 does, and is used when present.
    const factory: unknown = Reflect.get(zlib, "createZstdDecompress");
    if (typeof factory === "function") {
      const stream: unknown = factory();
      if (stream instanceof Transform) return stream;
    }
    throw new PolydevError(
      "unsupported_media_type",
      `zstd-compressed layers need Node >= 22.15 (this is ${process.version}); recompress the layer with gzip`,
    );
  }
  return null;
}

/** Where an entry lands: its host path and its path relative to the target, parents resolved. */
interface Placed {
  path: string;
  relativePath: string;
}

class LayerUnpacker {
  private readonly maxPathLength: number;
  private readonly tarBytesLimit: number;
  private readonly result: UnpackLayerResult = {
    entries: 0,
    bytes: 0,
    whiteouts: 0,
    skippedSpecialFiles: 0,
    ignoredExtendedAttributes: 0,
  };
  /** Paths this layer created: whiteouts only hide what lower layers left (OCI image spec). */
  private readonly created = new Set<string>();
  /** Directory modes, applied last so a read-only directory can still receive its entries. */
  private readonly directoryModes = new Map<string, number>();
  private failure: unknown = null;
  private rejectStopped: (error: unknown) => void = () => {};
  private readonly stopped: Promise<never>;

  constructor(
    private readonly root: string,
    private readonly options: UnpackLayerOptions,
  ) {
    this.maxPathLength = options.maxPathLength ?? DEFAULT_MAX_PATH_LENGTH;
    this.tarBytesLimit =
      options.maxBytes + options.maxEntries * TAR_OVERHEAD_PER_ENTRY_BYTES + TAR_OVERHEAD_FIXED_BYTES;
    this.stopped = new Promise<never>((_resolve, reject) => {
      this.rejectStopped = reject;
    });
    this.stopped.catch(() => {});
  }

  run(input: Readable, decompressor: Transform | null): Promise<UnpackLayerResult> {
    return new Promise<UnpackLayerResult>((resolvePromise, rejectPromise) => {
      const guard = new TarStreamGuard(this.tarBytesLimit, "the layer's tar stream");
      const parser = extract();
      capMetadataRecords(parser, (error) => fail(error));
      let inFlight: Promise<void> = Promise.resolve();
      const signal = this.options.signal;

      let settled = false;
      const finish = (): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        // Settle only once no write is in flight, so the caller may remove the output at once.
        void inFlight
          .then(() => (this.failure === null ? this.applyDirectoryModes() : undefined))
          .then(
            () => (this.failure === null ? resolvePromise({ ...this.result }) : rejectPromise(this.failure)),
            (error: unknown) => rejectPromise(this.failure ?? error),
          );
      };
      const fail = (error: unknown): void => {
        if (this.failure !== null) return;
        this.failure = error;
        this.rejectStopped(error);
        // Stops the reading at once (pipeline destroys the input too); the result does not wait
        // for the streams to report their end, which tar-stream does not always do.
        guard.destroy(error instanceof Error ? error : new Error(String(error)));
        finish();
      };
      const onAbort = (): void => fail(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });

      // tar-stream may emit 'error' more than once; a listener that stays keeps a late one from
      // becoming an uncaught exception once the pipeline has let go.
      for (const stream of [input, guard, parser, decompressor]) stream?.on("error", () => {});

      parser.on("entry", (header, entryStream, next) => {
        inFlight = this.handleEntry(header, entryStream).then(
          () => next(),
          (error: unknown) => fail(error),
        );
      });

      const stages = decompressor === null ? [input, guard, parser] : [input, decompressor, guard, parser];
      const settle = (error: Error | null | undefined): void => {
        if (error) fail(archiveError(error));
        else finish();
      };
      pipeline(stages, settle);
    });
  }

  private async handleEntry(header: Headers, entryStream: Readable): Promise<void> {
    this.result.entries += 1;
    if (this.result.entries > this.options.maxEntries) {
      throw new PolydevError(
        "payload_too_large",
        `the layer has more than ${this.options.maxEntries} entries`,
        {
          details: { maxEntries: this.options.maxEntries },
        },
      );
    }
    this.result.ignoredExtendedAttributes += countExtendedAttributes(header.pax);
    const components = layerPathComponents(header.name, "entry", this.maxPathLength);
    const baseName = components.at(-1);
    if (baseName === undefined) {
      // "./" itself: the target directory is the caller's, its mode and owner are left alone.
      await this.drain(entryStream);
      return;
    }
    if (baseName.startsWith(WHITEOUT_PREFIX)) {
      await this.drain(entryStream);
      await this.applyWhiteout(components, header.name);
      return;
    }
    const mode = (header.mode ?? 0o644) & 0o7777;
    let placed: Placed;
    switch (header.type) {
      case "file":
      case "contiguous-file":
        placed = await this.place(components, header.name);
        await this.clear(placed.path, false);
        await this.writeFile(placed.path, mode, header.size ?? 0, entryStream);
        break;
      case "directory":
        await this.drain(entryStream);
        placed = await this.place(components, header.name);
        await this.clear(placed.path, true);
        if ((await lstatOrNull(placed.path)) === null) await mkdir(placed.path, { mode: 0o700 });
        this.directoryModes.set(placed.relativePath, mode);
        break;
      case "symlink": {
        await this.drain(entryStream);
        const target = header.linkname ?? "";
        if (target === "" || target.includes("\0") || Buffer.byteLength(target) > this.maxPathLength) {
          throw new PolydevError(
            "invalid_request",
            `layer symlink ${JSON.stringify(header.name)} has an unusable target`,
            {
              details: { entry: header.name },
            },
          );
        }
        placed = await this.place(components, header.name);
        await this.clear(placed.path, false);
        await symlink(target, placed.path);
        break;
      }
      case "link": {
        await this.drain(entryStream);
        const linkname = header.linkname ?? "";
        const targetPath = await this.hardLinkTarget(linkname, header.name);
        placed = await this.place(components, header.name);
        if (placed.path === targetPath) {
          throw new PolydevError(
            "invalid_request",
            `layer hard link ${JSON.stringify(header.name)} points to ${JSON.stringify(linkname)}, which is itself`,
            { details: { entry: header.name } },
          );
        }
        await this.clear(placed.path, false);
        await link(targetPath, placed.path);
        break;
      }
      case "character-device":
      case "block-device":
      case "fifo":
        await this.drain(entryStream);
        this.result.skippedSpecialFiles += 1;
        return;
      default:
        throw new PolydevError(
          "invalid_request",
          `layer entry ${JSON.stringify(header.name)} has an unsupported type (${String(header.type)})`,
          { details: { entry: header.name } },
        );
    }
    this.created.add(placed.relativePath);
    this.options.onOwner?.(placed.relativePath, header.uid ?? 0, header.gid ?? 0);
  }

  /**
   * Resolves where an entry lands: its parents as the sandbox will see them (symlinks followed with
   * the target as `/`, see resolveParent), missing ones made as real directories; its last component
   * is never followed.
   */
  private async place(components: readonly string[], entry: string): Promise<Placed> {
    const parent = await resolveParent(this.root, components, entry, {
      create: true,
      onCreate: (created) => {
        this.created.add(created.join("/"));
        this.directoryModes.set(created.join("/"), 0o755);
      },
    });
    const resolved = [...(parent ?? []), components.at(-1) ?? ""];
    return { path: join(this.root, ...resolved), relativePath: resolved.join("/") };
  }

  /** Clears whatever the entry replaces; an existing directory stays when the entry is a directory too. */
  private async clear(path: string, keepDirectory: boolean): Promise<void> {
    const existing = await lstatOrNull(path);
    if (existing === null || (keepDirectory && existing.isDirectory())) return;
    // rm never follows a symlink: it removes the link, not what it points at.
    await rm(path, { recursive: true, force: true });
  }

  private async writeFile(path: string, mode: number, size: number, entryStream: Readable): Promise<void> {
    this.reserveBytes(size, 0);
    // O_EXCL|O_NOFOLLOW: the path was just cleared, and a symlink put there anyway is never opened.
    const file = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      await this.readEntry(entryStream, async (chunk) => {
        this.reserveBytes(chunk.length, chunk.length);
        await file.write(chunk);
      });
      // After the write: the umask would strip bits from open's mode, and setuid/setgid must stay.
      await file.chmod(mode);
    } finally {
      await file.close();
    }
  }

  /** Refuses when `incoming` more bytes would pass maxBytes; counts `written` of them as written. */
  private reserveBytes(incoming: number, written: number): void {
    if (this.result.bytes + incoming > this.options.maxBytes) {
      throw new PolydevError(
        "payload_too_large",
        `the layer holds more than ${this.options.maxBytes} bytes`,
        {
          details: { maxBytes: this.options.maxBytes },
        },
      );
    }
    this.result.bytes += written;
  }

  private async hardLinkTarget(linkname: string, entry: string): Promise<string> {
    const components = layerPathComponents(
      linkname,
      `hard link ${JSON.stringify(entry)} target`,
      this.maxPathLength,
    );
    const refused = (why: string): PolydevError =>
      new PolydevError(
        "invalid_request",
        `layer hard link ${JSON.stringify(entry)} points to ${JSON.stringify(linkname)}, ${why}`,
        { details: { entry } },
      );
    if (components.length === 0) throw refused("which is the target directory");
    const parent = await resolveParent(this.root, components, entry, { create: false });
    if (parent === null) throw refused("which is not unpacked");
    const path = join(this.root, ...parent, components.at(-1) ?? "");
    const stats = await lstatOrNull(path);
    if (stats === null) throw refused("which is not unpacked");
    if (stats.isDirectory()) throw refused("which is a directory");
    return path;
  }

  private async applyWhiteout(components: readonly string[], entry: string): Promise<void> {
    const baseName = components.at(-1) ?? "";
    if (baseName === OPAQUE_WHITEOUT) {
      this.result.whiteouts += 1;
      const directory = await resolveParent(this.root, components, entry, { create: false });
      if (directory !== null) await this.clearLowerContents(directory);
      return;
    }
    const name = baseName.slice(WHITEOUT_PREFIX.length);
    if (name === "" || name === "." || name === ".." || name.startsWith(WHITEOUT_PREFIX)) {
      throw new PolydevError(
        "invalid_request",
        `layer whiteout ${JSON.stringify(entry)} names no deletable entry`,
        {
          details: { entry },
        },
      );
    }
    this.result.whiteouts += 1;
    // The directory resolves as the sandbox sees it; the named entry itself is never followed.
    const directory = await resolveParent(this.root, components, entry, { create: false });
    if (directory === null) return;
    const victim = [...directory, name];
    if (this.created.has(victim.join("/"))) return;
    await rm(join(this.root, ...victim), { recursive: true, force: true });
  }

  /** Removes what lower layers left under `directory`, keeping what this layer put there. */
  private async clearLowerContents(directory: readonly string[]): Promise<void> {
    const path = join(this.root, ...directory);
    const stats = await lstatOrNull(path);
    if (stats === null || !stats.isDirectory()) return;
    for (const name of await readdir(path)) {
      const child = [...directory, name];
      if (!this.created.has(child.join("/"))) {
        await rm(join(this.root, ...child), { recursive: true, force: true });
      } else {
        await this.clearLowerContents(child);
      }
    }
  }

  private async applyDirectoryModes(): Promise<void> {
    // Deepest first, so making a parent read-only never blocks a child's chmod.
    const paths = [...this.directoryModes.keys()].sort((a, b) => b.split("/").length - a.split("/").length);
    for (const relativePath of paths) {
      const components = relativePath.split("/");
      // A later entry may have replaced the directory; O_NOFOLLOW|O_DIRECTORY never chmods through a symlink.
      if (!(await parentsAreDirectories(this.root, components))) continue;
      let directory: import("node:fs/promises").FileHandle;
      try {
        directory = await open(
          join(this.root, ...components),
          constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
        );
      } catch {
        continue;
      }
      try {
        await directory.chmod(this.directoryModes.get(relativePath) ?? 0o755);
      } finally {
        await directory.close();
      }
    }
  }

  /** Reads an entry's data, giving up as soon as the unpack fails (the parser may never end it). */
  private async readEntry(entryStream: Readable, onChunk: (chunk: Buffer) => Promise<void>): Promise<void> {
    const iterator: AsyncIterator<unknown> = entryStream[Symbol.asyncIterator]();
    for (;;) {
      const step = await Promise.race([iterator.next(), this.stopped]);
      if (step.done) return;
      const chunk = step.value;
      if (!Buffer.isBuffer(chunk))
        throw new PolydevError("internal", "the tar parser gave a non-buffer chunk");
      await onChunk(chunk);
    }
  }

  /** Data of an entry that writes no file (links, directories, devices) still counts toward maxBytes. */
  private drain(entryStream: Readable): Promise<void> {
    return this.readEntry(entryStream, async (chunk) => this.reserveBytes(chunk.length, chunk.length));
  }
}

/**
 * Refuses a metadata record longer than MAX_METADATA_RECORD_BYTES before tar-stream starts buffering
 * it: its `_parse(size, …)` is where it decides how many bytes to collect after a header.
 */
function capMetadataRecords(parser: Extract, fail: (error: PolydevError) => void): void {
  const parse = parser._parse;
  parser._parse = function capped(this: Extract, size: number, onparse: () => void): void {
    const type = this._header?.type;
    if (size > MAX_METADATA_RECORD_BYTES && METADATA_TYPES.has(type)) {
      fail(
        new PolydevError(
          "payload_too_large",
          `the layer has a ${String(type)} record of ${size} bytes (at most ${MAX_METADATA_RECORD_BYTES})`,
          { details: { maxMetadataRecordBytes: MAX_METADATA_RECORD_BYTES } },
        ),
      );
    }
    parse.call(this, size, onparse);
  };
}

function countExtendedAttributes(pax: Record<string, string> | null | undefined): number {
  if (!pax) return 0;
  return Object.keys(pax).filter(
    (key) => key.startsWith("SCHILY.xattr.") || key.startsWith("LIBARCHIVE.xattr."),
  ).length;
}

/** Parser and decompressor errors mean the archive is bad, which is the client's input. */
function archiveError(error: Error): unknown {
  if (error instanceof PolydevError) return error;
  return new PolydevError("invalid_request", `the layer archive is corrupt or truncated: ${error.message}`, {
    cause: error,
  });
}

/**
 * Reads the first `count` bytes to sniff the compression, then gives a stream that still starts at
 * byte 0 (the same one, unshifted, unless it already ended).
 */
function peekBytes(
  input: Readable,
  count: number,
  signal: AbortSignal | undefined,
): Promise<{ head: Buffer; stream: Readable }> {
  return new Promise((resolvePromise, rejectPromise) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const cleanup = (): void => {
      input.off("readable", onReadable);
      input.off("end", onEnd);
      input.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    const onReadable = (): void => {
      for (;;) {
        if (length >= count) break;
        const chunk: unknown = input.read();
        if (chunk === null) return;
        const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
        chunks.push(buffer);
        length += buffer.length;
      }
      cleanup();
      const buffered = Buffer.concat(chunks);
      input.unshift(buffered);
      resolvePromise({ head: padded(buffered, count), stream: input });
    };
    const onEnd = (): void => {
      cleanup();
      const buffered = Buffer.concat(chunks);
      resolvePromise({ head: padded(buffered, count), stream: readableOf(buffered) });
    };
    const onError = (error: Error): void => {
      cleanup();
      rejectPromise(error);
    };
    const onAbort = (): void => {
      cleanup();
      input.destroy();
      rejectPromise(signal?.reason);
    };
    input.on("readable", onReadable);
    input.once("end", onEnd);
    input.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function padded(buffer: Buffer, count: number): Buffer {
  return buffer.length >= count
    ? buffer.subarray(0, count)
    : Buffer.concat([buffer, Buffer.alloc(count - buffer.length)]);
}

function readableOf(buffer: Buffer): Readable {
  return Readable.from(buffer.length === 0 ? [] : [buffer]);
}
