import { posix } from "node:path";
import { pipeline, Readable } from "node:stream";
import * as zlib from "node:zlib";
import { PolydevError } from "@polydev/core";
import { type Extract, extract, type Headers } from "tar-stream";
import { z } from "zod";
import { type BlobStore, chunksOf, DIGEST_PATTERN } from "./blob-store.js";
import { TarStreamGuard } from "./tar-stream-guard.js";
import { MAX_METADATA_RECORD_BYTES } from "./unpack-layer.js";

export const DEFAULT_MAX_JSON_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_LAYERS = 127;
const MAX_NAME_BYTES = 4096;
const MAX_LINK_HOPS = 16;
export const MAX_INDEX_DEPTH = 4;
const TAR_OVERHEAD_PER_ENTRY_BYTES = 16 * 1024;
const TAR_OVERHEAD_FIXED_BYTES = 1024 * 1024;

export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  layerTar: "application/vnd.oci.image.layer.v1.tar",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
} as const;

export const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList]);
export const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const LAYER_TYPES = new Set<string>([
  MEDIA_TYPES.layerTar,
  MEDIA_TYPES.layerGzip,
  MEDIA_TYPES.layerZstd,
  "application/vnd.oci.image.layer.nondistributable.v1.tar",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  "application/vnd.docker.image.rootfs.diff.tar.gzip",
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
]);
/** Files of the archive read into memory (capped) rather than stored as blobs. */
const METADATA_FILES = new Set(["oci-layout", "index.json", "manifest.json", "repositories"]);

export interface ImportLimits {
  /** Most bytes of files in the archive in total (and, with tar overhead, of the archive itself). */
  maxBytes: number;
  /** Most archive entries. */
  maxEntries: number;
  /** Largest index, manifest or config JSON; default 4 MiB. */
  maxJsonBytes?: number;
  /** Most layers in the image; default 127 (overlayfs' usual lower-dir limit). */
  maxLayers?: number;
  signal?: AbortSignal;
}

/** The run settings of an image: only these fields of its config are kept. */
export interface ImageRunConfig {
  Env: string[];
  Cmd: string[];
  Entrypoint: string[];
  WorkingDir: string;
  User: string;
}

export interface ImageLayer {
  digest: string;
  mediaType: string;
  size: number;
}

export interface ImportedImage {
  format: "oci" | "docker-archive" | "registry";
  /** Digest of the image manifest in the store (synthesised as an OCI manifest for a docker-archive). */
  manifestDigest: string;
  configDigest: string;
  config: ImageRunConfig;
  /** In order, base first; blobs kept as uploaded (gzip layers stay compressed). */
  layers: ImageLayer[];
}

// ---- JSON schemas: bounded, and only what is used ----

const digestSchema = z.string().regex(DIGEST_PATTERN, "not a sha256 digest");
export const descriptorSchema = z.object({
  mediaType: z.string().max(256),
  digest: digestSchema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  platform: z
    .object({
      architecture: z.string().max(64),
      os: z.string().max(64),
      variant: z.string().max(64).optional(),
    })
    .optional(),
  annotations: z.record(z.string().max(1024), z.string().max(16 * 1024)).optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

const layoutSchema = z.object({ imageLayoutVersion: z.string().regex(/^1\.\d+\.\d+$/) });
export const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().max(256).optional(),
  manifests: z.array(descriptorSchema).max(1024),
});
export const manifestSchema = (maxLayers: number) =>
  z.object({
    schemaVersion: z.literal(2),
    mediaType: z.string().max(256).optional(),
    config: descriptorSchema,
    layers: z.array(descriptorSchema).max(maxLayers),
  });
const dockerManifestSchema = (maxLayers: number) =>
  z
    .array(
      z.object({
        Config: z.string().max(MAX_NAME_BYTES),
        RepoTags: z.array(z.string().max(512)).max(256).nullish(),
        Layers: z.array(z.string().max(MAX_NAME_BYTES)).max(maxLayers),
      }),
    )
    .min(1)
    .max(64);

const MAX_ARG_BYTES = 32 * 1024;
const MAX_ARGV_TOTAL_BYTES = 128 * 1024;
const noNul = (value: string) => !value.includes("\0");
const argSchema = z.string().max(MAX_ARG_BYTES).refine(noNul, "contains a NUL byte");
const argvSchema = z
  .array(argSchema)
  .max(1024)
  .refine((list) => totalBytes(list) <= MAX_ARGV_TOTAL_BYTES, `longer than ${MAX_ARGV_TOTAL_BYTES} bytes`)
  .nullish();
const runConfigSchema = z.object({
  Env: z
    .array(
      z
        .string()
        .max(MAX_ARG_BYTES)
        .refine(noNul, "contains a NUL byte")
        .refine((value) => /^[^=]+=/.test(value), "is not NAME=value"),
    )
    .max(4096)
    .refine((list) => totalBytes(list) <= MAX_ARGV_TOTAL_BYTES, `longer than ${MAX_ARGV_TOTAL_BYTES} bytes`)
    .nullish(),
  Cmd: argvSchema,
  Entrypoint: argvSchema,
  WorkingDir: z.string().max(4096).refine(noNul, "contains a NUL byte").nullish(),
  User: z.string().max(256).refine(noNul, "contains a NUL byte").nullish(),
});
const configSchema = z.object({
  architecture: z.string().max(64).optional(),
  os: z.string().max(64).optional(),
  config: runConfigSchema.nullish(),
  rootfs: z.object({ type: z.literal("layers"), diff_ids: z.array(digestSchema).max(4096) }).optional(),
});

function totalBytes(list: readonly string[]): number {
  return list.reduce((sum, value) => sum + Buffer.byteLength(value), 0);
}

// ---- reading the archive ----

interface StoredFile {
  digest: string;
  size: number;
  /** First bytes, to tell a gzip or zstd layer from a plain tar. */
  head: Buffer;
}

interface ArchiveContents {
  /** Regular files by normalised archive name (a map key only: never a file-system path). */
  files: Map<string, StoredFile>;
  /** Symlinks and hard links by name, to the normalised name they point at. */
  links: Map<string, string>;
  metadata: Map<string, Buffer>;
  /** Digests of the blobs this archive held (verified as they were stored). */
  digests: Set<string>;
}

/**
 * Imports an uploaded image tarball, in OCI image layout (`oci-layout`, `index.json`,
 * `blobs/sha256/…`) or docker-archive (`docker save`: `manifest.json`, a config and layer tars) form.
 *
 * Every file goes into `store` by digest (OCI blobs are verified against their names on the way in,
 * other files are hashed), never to a path taken from the archive. Then the image's manifest (for
 * linux/amd64 when an index lists several), config and layers are checked: every digest the manifest
 * names must be a blob of this archive with the declared size, and the config is validated.
 *
 * Refusals: a corrupt, truncated or malformed archive, a digest mismatch, a missing blob or an
 * unsuitable platform is `invalid_request`; a limit is `payload_too_large`; a layer compression this
 * Node cannot read is `unsupported_media_type`. Blobs stored before a refusal stay in the store
 * unreferenced (content-addressed, harmless, for the store's garbage collection).
 */
export async function importImageArchive(
  input: Readable,
  store: BlobStore,
  limits: ImportLimits,
): Promise<ImportedImage> {
  limits.signal?.throwIfAborted();
  await store.init();
  const contents = await readArchive(input, store, limits);
  if (contents.metadata.has("index.json")) return importOciLayout(contents, store, limits);
  if (contents.metadata.has("manifest.json")) return importDockerArchive(contents, store, limits);
  throw new PolydevError(
    "invalid_request",
    "the archive is neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)",
  );
}

function readArchive(input: Readable, store: BlobStore, limits: ImportLimits): Promise<ArchiveContents> {
  const maxJsonBytes = limits.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
  const contents: ArchiveContents = {
    files: new Map(),
    links: new Map(),
    metadata: new Map(),
    digests: new Set(),
  };
  let entries = 0;
  let bytes = 0;
  const abort = new AbortController();
  const onOuterAbort = (): void => fail(limits.signal?.reason);
  limits.signal?.addEventListener("abort", onOuterAbort, { once: true });
  let failure: unknown = null;
  let current: Readable | null = null;
  let inFlight: Promise<void> = Promise.resolve();
  const guard = new TarStreamGuard(
    limits.maxBytes +
      4 * maxJsonBytes +
      limits.maxEntries * TAR_OVERHEAD_PER_ENTRY_BYTES +
      TAR_OVERHEAD_FIXED_BYTES,
    "the image archive",
    (first) =>
      first[0] === 0x1f && first[1] === 0x8b
        ? new PolydevError(
            "unsupported_media_type",
            "the image archive is gzip-compressed: upload the tar itself (gunzip it first)",
          )
        : undefined,
  );
  const parser = extract();
  let settle: () => void = () => {};
  function fail(error: unknown): void {
    if (failure !== null) return;
    failure = error ?? new Error("aborted");
    abort.abort(failure);
    current?.destroy();
    guard.destroy(failure instanceof Error ? failure : new Error(String(failure)));
    input.destroy();
    settle();
  }
  capMetadataRecords(parser, fail);

  const remaining = (): number => limits.maxBytes - bytes;
  const tooLarge = (): PolydevError =>
    new PolydevError("payload_too_large", `the archive holds more than ${limits.maxBytes} bytes`, {
      details: { maxBytes: limits.maxBytes },
    });

  async function drain(stream: Readable): Promise<void> {
    // Not destroyed on a throw: fail() tears the streams down once its own error is recorded.
    for await (const chunk of chunksOf(stream)) {
      bytes += (chunk as Buffer).length;
      if (bytes > limits.maxBytes) throw tooLarge();
    }
  }

  async function handleEntry(header: Headers, stream: Readable): Promise<void> {
    entries += 1;
    if (entries > limits.maxEntries) {
      throw new PolydevError("payload_too_large", `the archive has more than ${limits.maxEntries} entries`, {
        details: { maxEntries: limits.maxEntries },
      });
    }
    const name = archiveName(header.name, "entry");
    switch (header.type) {
      case "file":
      case "contiguous-file":
        break;
      case "symlink":
      case "link": {
        await drain(stream);
        const target = header.linkname ?? "";
        const joined = header.type === "symlink" ? posix.join(posix.dirname(name), target) : target;
        if (!target.startsWith("/")) contents.links.set(name, archiveName(joined, `link ${name} target`));
        return;
      }
      default:
        // Directories, and anything else (devices, FIFOs): nothing of them is ever created.
        await drain(stream);
        return;
    }
    const size = header.size ?? 0;
    if (METADATA_FILES.has(name)) {
      if (size > maxJsonBytes) {
        throw new PolydevError("payload_too_large", `${name} is larger than ${maxJsonBytes} bytes`, {
          details: { maxJsonBytes },
        });
      }
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      contents.metadata.set(name, Buffer.concat(chunks));
      return;
    }
    if (size > remaining()) throw tooLarge();
    const components = name.split("/");
    let expectedDigest: string | undefined;
    if (components[0] === "blobs") {
      const [, algorithm, hex] = components;
      if (components.length !== 3 || algorithm !== "sha256" || !/^[0-9a-f]{64}$/.test(hex ?? "")) {
        throw new PolydevError(
          "invalid_request",
          `archive entry ${JSON.stringify(header.name)} is not a blob path (blobs/sha256/<64 hex>)`,
          { details: { entry: header.name } },
        );
      }
      expectedDigest = `sha256:${hex}`;
    }
    let head = Buffer.alloc(0);
    const stored = await store.put(stream, {
      maxBytes: remaining(),
      expectedDigest,
      expectedSize: size,
      signal: abort.signal,
      destroyInputOnError: false,
      onChunk: (chunk) => {
        if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
      },
    });
    bytes += stored.size;
    contents.files.set(name, { digest: stored.digest, size: stored.size, head });
    contents.digests.add(stored.digest);
  }

  return new Promise<ArchiveContents>((resolvePromise, rejectPromise) => {
    let settled = false;
    settle = () => {
      if (settled) return;
      settled = true;
      limits.signal?.removeEventListener("abort", onOuterAbort);
      // inFlight never rejects (each entry's failure goes to fail()); settle on either outcome anyway.
      const finish = (): void => (failure === null ? resolvePromise(contents) : rejectPromise(failure));
      inFlight.then(finish, finish);
    };
    for (const stream of [input, guard, parser]) stream.on("error", () => {});
    parser.on("entry", (header, stream, next) => {
      current = stream;
      inFlight = handleEntry(header, stream).then(
        () => {
          current = null;
          next();
        },
        (error: unknown) => fail(error),
      );
    });
    pipeline([input, guard, parser], (error) => {
      if (error) fail(archiveError(error));
      else settle();
    });
  });
}

/** Normalises an archive name to a map key; refuses absolute, `..`, NUL and over-long names. */
function archiveName(name: string, what: string): string {
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw new PolydevError(
      "payload_too_large",
      `archive ${what} name is longer than ${MAX_NAME_BYTES} bytes`,
    );
  }
  const components = name.split("/").filter((component) => component !== "" && component !== ".");
  if (name.includes("\0") || name.startsWith("/") || components.includes("..")) {
    throw new PolydevError(
      "invalid_request",
      `archive ${what} ${JSON.stringify(name)} is absolute or has a '..' component`,
      { details: { entry: name } },
    );
  }
  return components.join("/");
}

function capMetadataRecords(parser: Extract, fail: (error: PolydevError) => void): void {
  const parse = parser._parse;
  parser._parse = function capped(this: Extract, size: number, onparse: () => void): void {
    const type = this._header?.type;
    if (
      size > MAX_METADATA_RECORD_BYTES &&
      (type === "pax-header" ||
        type === "pax-global-header" ||
        type === "gnu-long-path" ||
        type === "gnu-long-link-path")
    ) {
      fail(
        new PolydevError("payload_too_large", `the archive has a ${type} record of ${size} bytes`, {
          details: { maxMetadataRecordBytes: MAX_METADATA_RECORD_BYTES },
        }),
      );
    }
    parse.call(this, size, onparse);
  };
}

function archiveError(error: Error): unknown {
  if (error instanceof PolydevError) return error;
  return new PolydevError("invalid_request", `the image archive is corrupt or truncated: ${error.message}`, {
    cause: error,
  });
}

// ---- OCI image layout ----

async function importOciLayout(
  contents: ArchiveContents,
  store: BlobStore,
  limits: ImportLimits,
): Promise<ImportedImage> {
  const layout = contents.metadata.get("oci-layout");
  if (layout === undefined) {
    throw new PolydevError("invalid_request", "the OCI image layout has index.json but no oci-layout file");
  }
  parseJson(layout, layoutSchema, "oci-layout");
  const index = parseJson(contents.metadata.get("index.json") ?? Buffer.alloc(0), indexSchema, "index.json");
  const manifestDescriptor = await selectManifest(index.manifests, contents, store, limits, 0);
  const maxLayers = limits.maxLayers ?? DEFAULT_MAX_LAYERS;
  const manifest = parseJson(
    await readBlob(manifestDescriptor, contents, store, limits),
    manifestSchema(maxLayers),
    `manifest ${manifestDescriptor.digest}`,
  );
  if (manifest.mediaType !== undefined && manifest.mediaType !== manifestDescriptor.mediaType) {
    throw new PolydevError(
      "invalid_request",
      `manifest ${manifestDescriptor.digest} says it is ${manifest.mediaType}, its descriptor ${manifestDescriptor.mediaType}`,
    );
  }
  const layers: ImageLayer[] = [];
  for (const layer of manifest.layers) {
    checkLayerMediaType(layer.mediaType, layer.digest);
    await checkBlob(layer, contents, store);
    layers.push({ digest: layer.digest, mediaType: layer.mediaType, size: layer.size });
  }
  const config = await readConfig(
    await readBlob(manifest.config, contents, store, limits),
    manifest.config.digest,
    layers,
  );
  return {
    format: "oci",
    manifestDigest: manifestDescriptor.digest,
    configDigest: manifest.config.digest,
    config,
    layers,
  };
}

/** Picks the image manifest for linux/amd64, following nested indexes. */
async function selectManifest(
  manifests: readonly Descriptor[],
  contents: ArchiveContents,
  store: BlobStore,
  limits: ImportLimits,
  depth: number,
): Promise<Descriptor> {
  const chosen = pickPlatformManifest(manifests);
  if (!INDEX_TYPES.has(chosen.mediaType)) return chosen;
  if (depth >= MAX_INDEX_DEPTH) {
    throw new PolydevError("invalid_request", `image indexes are nested more than ${MAX_INDEX_DEPTH} deep`);
  }
  const nested = parseJson(
    await readBlob(chosen, contents, store, limits),
    indexSchema,
    `index ${chosen.digest}`,
  );
  return selectManifest(nested.manifests, contents, store, limits, depth + 1);
}

/** The linux/amd64 entry of an index (an image manifest or a nested index), skipping attestations. */
export function pickPlatformManifest(manifests: readonly Descriptor[]): Descriptor {
  const usable = manifests.filter(
    (descriptor) =>
      descriptor.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest" &&
      (MANIFEST_TYPES.has(descriptor.mediaType) || INDEX_TYPES.has(descriptor.mediaType)),
  );
  const amd64 = usable.filter(
    (descriptor) => descriptor.platform?.os === "linux" && descriptor.platform.architecture === "amd64",
  );
  const unplatformed = usable.filter((descriptor) => descriptor.platform === undefined);
  let chosen: Descriptor | undefined = amd64[0];
  if (chosen === undefined && unplatformed.length === 1) chosen = unplatformed[0];
  if (chosen === undefined) {
    const platforms = usable
      .filter((descriptor) => descriptor.platform !== undefined)
      .map((descriptor) => `${descriptor.platform?.os}/${descriptor.platform?.architecture}`);
    throw new PolydevError(
      "invalid_request",
      usable.length === 0
        ? "the image index lists no image manifest"
        : unplatformed.length > 1
          ? `the image index lists ${unplatformed.length} manifests without a platform; it must hold one image`
          : `the image index has no linux/amd64 manifest (it has ${platforms.join(", ")})`,
      { details: { platforms } },
    );
  }
  return chosen;
}

export function checkLayerMediaType(mediaType: string, digest: string): void {
  if (!LAYER_TYPES.has(mediaType)) {
    throw new PolydevError(
      "unsupported_media_type",
      `layer ${digest} has the unsupported type ${mediaType}`,
      {
        details: { digest, mediaType },
      },
    );
  }
  if (mediaType.endsWith("+zstd") && typeof Reflect.get(zlib, "createZstdDecompress") !== "function") {
    throw new PolydevError(
      "unsupported_media_type",
      `layer ${digest} is zstd-compressed, which needs Node >= 22.15 (this is ${process.version})`,
      { details: { digest, mediaType } },
    );
  }
}

/** The blob must have come in this archive (never another upload's) with the declared size. */
async function checkBlob(descriptor: Descriptor, contents: ArchiveContents, store: BlobStore): Promise<void> {
  if (!contents.digests.has(descriptor.digest) || !(await store.has(descriptor.digest))) {
    throw new PolydevError("invalid_request", `the archive does not hold the blob ${descriptor.digest}`, {
      details: { digest: descriptor.digest },
    });
  }
  const size = await store.size(descriptor.digest);
  if (size !== descriptor.size) {
    throw new PolydevError(
      "invalid_request",
      `blob ${descriptor.digest} is ${size} bytes, its descriptor says ${descriptor.size}`,
      { details: { digest: descriptor.digest } },
    );
  }
}

async function readBlob(
  descriptor: Descriptor,
  contents: ArchiveContents,
  store: BlobStore,
  limits: ImportLimits,
): Promise<Buffer> {
  await checkBlob(descriptor, contents, store);
  return store.read(descriptor.digest, limits.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES);
}

// ---- docker-archive ----

async function importDockerArchive(
  contents: ArchiveContents,
  store: BlobStore,
  limits: ImportLimits,
): Promise<ImportedImage> {
  const maxLayers = limits.maxLayers ?? DEFAULT_MAX_LAYERS;
  const images = parseJson(
    contents.metadata.get("manifest.json") ?? Buffer.alloc(0),
    dockerManifestSchema(maxLayers),
    "manifest.json",
  );
  if (images.length !== 1) {
    throw new PolydevError(
      "invalid_request",
      `the docker-archive holds ${images.length} images; import one at a time`,
    );
  }
  const [image] = images;
  if (image === undefined) throw new PolydevError("internal", "manifest.json lost its image");
  const configFile = lookupFile(contents, image.Config, "config");
  const layers: ImageLayer[] = image.Layers.map((name) => {
    const file = lookupFile(contents, name, "layer");
    const mediaType = isGzip(file.head)
      ? MEDIA_TYPES.layerGzip
      : isZstd(file.head)
        ? MEDIA_TYPES.layerZstd
        : MEDIA_TYPES.layerTar;
    checkLayerMediaType(mediaType, file.digest);
    return { digest: file.digest, mediaType, size: file.size };
  });
  const maxJsonBytes = limits.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
  const config = await readConfig(
    await store.read(configFile.digest, maxJsonBytes),
    configFile.digest,
    layers,
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: configFile.digest, size: configFile.size },
      layers,
    }),
  );
  const stored = await store.put(Readable.from([manifest]), { maxBytes: manifest.length });
  return {
    format: "docker-archive",
    manifestDigest: stored.digest,
    configDigest: configFile.digest,
    config,
    layers,
  };
}

/** Finds a file of the archive by the name manifest.json gives, following its links. */
function lookupFile(contents: ArchiveContents, rawName: string, what: string): StoredFile {
  let name = archiveName(rawName, what);
  for (let hop = 0; hop <= MAX_LINK_HOPS; hop += 1) {
    const file = contents.files.get(name);
    if (file !== undefined) return file;
    const target = contents.links.get(name);
    if (target === undefined) break;
    name = target;
  }
  throw new PolydevError(
    "invalid_request",
    `the docker-archive does not hold the ${what} ${JSON.stringify(rawName)} its manifest.json names`,
    { details: { entry: rawName } },
  );
}

const isGzip = (head: Buffer): boolean => head[0] === 0x1f && head[1] === 0x8b;
const isZstd = (head: Buffer): boolean => head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528;

// ---- config ----

export async function readConfig(
  raw: Buffer,
  digest: string,
  layers: readonly ImageLayer[],
): Promise<ImageRunConfig> {
  const config = parseJson(raw, configSchema, `image config ${digest}`);
  if ((config.os !== undefined && config.os !== "linux") || (config.architecture ?? "amd64") !== "amd64") {
    throw new PolydevError(
      "invalid_request",
      `the image is for ${config.os ?? "?"}/${config.architecture ?? "?"}, not linux/amd64`,
    );
  }
  const diffIds = config.rootfs?.diff_ids;
  if (diffIds !== undefined) {
    if (diffIds.length !== layers.length) {
      throw new PolydevError(
        "invalid_request",
        `the image config lists ${diffIds.length} layer diff ids for ${layers.length} layers`,
      );
    }
    // An uncompressed layer's diff id is its digest; compressed ones are checked when unpacked.
    layers.forEach((layer, index) => {
      if (layer.mediaType.endsWith(".tar") && diffIds[index] !== layer.digest) {
        throw new PolydevError(
          "invalid_request",
          `layer ${index} (${layer.digest}) does not match the config's diff id ${diffIds[index]}`,
        );
      }
    });
  }
  const run = config.config ?? {};
  return {
    Env: run.Env ?? [],
    Cmd: run.Cmd ?? [],
    Entrypoint: run.Entrypoint ?? [],
    WorkingDir: run.WorkingDir ?? "",
    User: run.User ?? "",
  };
}

export function parseJson<T>(raw: Buffer, schema: z.ZodType<T>, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch (error) {
    throw new PolydevError("invalid_request", `${what} is not JSON`, { cause: error });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`);
    throw new PolydevError("invalid_request", `${what} is not valid: ${issues.join("; ")}`, {
      details: { issues },
    });
  }
  return parsed.data;
}
