import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, readdir, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { PolydevError } from "@polydev/core";

/** The only digest form the store accepts (OCI image spec, sha256 in lower-case hex). */
export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

const TEMP_PREFIX = ".tmp-";

export interface BlobPutOptions {
  /** Refused with `payload_too_large` past this many bytes; reading stops there. */
  maxBytes: number;
  /** When given, content hashing to anything else is refused with `invalid_request`. */
  expectedDigest?: string;
  /** When given, content of another length is refused with `invalid_request`. */
  expectedSize?: number;
  signal?: AbortSignal;
  /**
   * Default true: on failure the input is destroyed. False leaves it to the caller (who may want its
   * own error, not the stream's "premature close", to be the one reported).
   */
  destroyInputOnError?: boolean;
  /** Sees every chunk as it is hashed (e.g. to sniff a layer's compression); must not keep it. */
  onChunk?: (chunk: Buffer) => void;
}

export interface BlobPutResult {
  digest: string;
  size: number;
  /** False when the blob was already in the store (the content was still read and verified). */
  created: boolean;
}

/** Throws `invalid_request` unless `digest` is `sha256:<64 lower-case hex>`; returns the hex. */
export function digestHex(digest: unknown): string {
  if (typeof digest !== "string" || !DIGEST_PATTERN.test(digest)) {
    throw new PolydevError(
      "invalid_request",
      `${JSON.stringify(String(digest).slice(0, 80))} is not a sha256 digest (sha256:<64 hex>)`,
    );
  }
  return digest.slice("sha256:".length);
}

/**
 * Content-addressed blobs in `<root>/sha256/<hex>`. A blob is written to a temp file in the same
 * directory while it is hashed, fsynced, renamed into place and the directory fsynced, so a blob
 * path either does not exist or holds content matching its name, across crashes too. A crash mid-put
 * leaves only a `.tmp-*` file, which `sweep()` removes. No caller-given name ever becomes a path:
 * paths are built from validated digests only.
 */
export class BlobStore {
  readonly directory: string;
  private readonly inFlight = new Set<string>();

  constructor(readonly root: string) {
    this.directory = join(root, "sha256");
  }

  /** Creates the store's directories (idempotent). */
  async init(): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
  }

  /** The file of a blob (which may not exist); refuses a malformed digest. */
  pathOf(digest: string): string {
    return join(this.directory, digestHex(digest));
  }

  async has(digest: string): Promise<boolean> {
    return (await this.stat(digest)) !== null;
  }

  /** Size of a blob, or null when it is not in the store. */
  async size(digest: string): Promise<number | null> {
    return (await this.stat(digest))?.size ?? null;
  }

  /** A stream of a blob's content; `not_found` when it is absent. */
  async open(digest: string): Promise<Readable> {
    const path = this.pathOf(digest);
    try {
      const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      return handle.createReadStream();
    } catch (error) {
      if (isErrno(error, "ENOENT")) throw notFound(digest);
      throw error;
    }
  }

  /** Reads a whole blob of at most `maxBytes` into memory (manifests, configs). */
  async read(digest: string, maxBytes: number): Promise<Buffer> {
    const size = await this.size(digest);
    if (size === null) throw notFound(digest);
    if (size > maxBytes) {
      throw new PolydevError("payload_too_large", `blob ${digest} is ${size} bytes (at most ${maxBytes})`, {
        details: { digest, maxBytes },
      });
    }
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of await this.open(digest)) {
      const buffer = chunk as Buffer;
      length += buffer.length;
      if (length > maxBytes) throw new PolydevError("internal", `blob ${digest} grew while read`);
      chunks.push(buffer);
    }
    return Buffer.concat(chunks);
  }

  /** Removes a blob; false when it was not there. */
  async remove(digest: string): Promise<boolean> {
    try {
      await unlink(this.pathOf(digest));
      return true;
    } catch (error) {
      if (isErrno(error, "ENOENT")) return false;
      throw error;
    }
  }

  /** Digests of every blob in the store. */
  async list(): Promise<string[]> {
    const names = await readdir(this.directory);
    return names.filter((name) => /^[0-9a-f]{64}$/.test(name)).map((name) => `sha256:${name}`);
  }

  /**
   * Removes the temp files left by puts that never finished (a crash); those of this instance's puts
   * still running are spared. Call at start-up, before other processes could be writing the store.
   */
  async sweep(): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.directory)) {
      if (!name.startsWith(TEMP_PREFIX) || this.inFlight.has(name)) continue;
      try {
        await unlink(join(this.directory, name));
        removed += 1;
      } catch (error) {
        if (!isErrno(error, "ENOENT")) throw error;
      }
    }
    return removed;
  }

  /**
   * Stores `input`'s content under its sha256. On any failure (mismatch, size, a stream error, an
   * abort) the input is destroyed, the temp file removed and nothing is added to the store.
   */
  async put(input: Readable, options: BlobPutOptions): Promise<BlobPutResult> {
    if (options.expectedDigest !== undefined) digestHex(options.expectedDigest);
    options.signal?.throwIfAborted();
    const tempName = `${TEMP_PREFIX}${process.pid}-${randomBytes(8).toString("hex")}`;
    const tempPath = join(this.directory, tempName);
    this.inFlight.add(tempName);
    let renamed = false;
    try {
      const file = await open(
        tempPath,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o444,
      );
      const hash = createHash("sha256");
      let size = 0;
      try {
        for await (const chunk of chunksOf(input)) {
          options.signal?.throwIfAborted();
          const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
          size += buffer.length;
          if (size > options.maxBytes) {
            throw new PolydevError(
              "payload_too_large",
              `the blob is larger than ${options.maxBytes} bytes${options.expectedDigest ? ` (${options.expectedDigest})` : ""}`,
              { details: { maxBytes: options.maxBytes, digest: options.expectedDigest } },
            );
          }
          hash.update(buffer);
          options.onChunk?.(buffer);
          await file.write(buffer);
        }
        options.signal?.throwIfAborted();
        await file.sync();
      } finally {
        await file.close();
      }
      const digest = `sha256:${hash.digest("hex")}`;
      if (options.expectedDigest !== undefined && digest !== options.expectedDigest) {
        throw new PolydevError(
          "invalid_request",
          `the blob named ${options.expectedDigest} has the digest ${digest}`,
          { details: { expected: options.expectedDigest, actual: digest } },
        );
      }
      if (options.expectedSize !== undefined && size !== options.expectedSize) {
        throw new PolydevError(
          "invalid_request",
          `the blob ${digest} is ${size} bytes, not the ${options.expectedSize} declared`,
          { details: { digest, expected: options.expectedSize, actual: size } },
        );
      }
      if (await this.has(digest)) return { digest, size, created: false };
      await rename(tempPath, this.pathOf(digest));
      renamed = true;
      await syncDirectory(this.directory);
      return { digest, size, created: true };
    } catch (error) {
      if (options.destroyInputOnError !== false) input.destroy();
      throw error;
    } finally {
      if (!renamed) await unlink(tempPath).catch(() => {});
      this.inFlight.delete(tempName);
    }
  }

  private async stat(digest: string): Promise<import("node:fs").Stats | null> {
    try {
      const stats = await lstat(this.pathOf(digest));
      return stats.isFile() ? stats : null;
    } catch (error) {
      if (isErrno(error, "ENOENT")) return null;
      throw error;
    }
  }
}

/**
 * Iterates a stream's chunks like `for await`, except that leaving the loop early (a throw) does not
 * destroy the stream: tar-stream's entry streams have no `iterator({ destroyOnReturn })`.
 */
export async function* chunksOf(stream: Readable): AsyncGenerator<unknown> {
  const iterator: AsyncIterator<unknown> = stream[Symbol.asyncIterator]();
  for (;;) {
    const step = await iterator.next();
    if (step.done) return;
    yield step.value;
  }
}

async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

function notFound(digest: string): PolydevError {
  return new PolydevError("not_found", `blob ${digest} is not in the store`, { details: { digest } });
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && "code" in error && error.code === code;
}
