/**
 * The image store: named images whose layers are unpacked directories in the storage pool
 * (`<root>/layers/<hex>/`, owners as in the image, under a root-only parent), made by importing an
 * archive, pulling from a registry, building a Dockerfile or registering the base root file system.
 * Records live in the database; a layer directory exists only once its record does, so a crash
 * leaves at most a directory without a record, which the next start removes.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, readdir, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import type { Readable } from "node:stream";
import type {
  Clock,
  ImageConfig,
  ImageLayerRecord,
  ImageRecord,
  ImageSource,
  SandboxImage,
  Store,
} from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { ContextFile, CopyStep, DockerfilePlan, ImportedImage } from "@polydev/images";
import {
  assembleRootfs,
  BlobStore,
  contextDigest,
  contextFiles,
  DOCKERFILE_MAX_BYTES,
  importImageArchive,
  layerCacheKeys,
  parseDockerfile,
  parseImageReference,
  pullImage,
  unpackLayer,
} from "@polydev/images";
import type { Logger } from "pino";
import { newId } from "./api-keys.js";
import { BuildLog } from "./build-log.js";
import { OwnerLog, writeCopyLayer } from "./image-layers.js";
import type { BuildBase, ImageStorage, RunStep } from "./image-ports.js";
import { KeyedLock } from "./keyed-lock.js";

export const BASE_IMAGE_NAME = "polydev/base";

export interface ImageLimits {
  /** Most bytes of an image's files (an archive, a pull, a layer). */
  maxImageBytes: number;
  maxEntries: number;
  /** Most bytes and files of an uploaded build context. */
  maxContextBytes: number;
  maxContextFiles: number;
  /** The newest part of a build log kept. */
  maxLogBytes: number;
  /** Builds and pulls one user may have running at once. */
  maxConcurrentBuilds: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = {
  maxImageBytes: 8 * 1024 ** 3,
  maxEntries: 500_000,
  maxContextBytes: 1024 ** 3,
  maxContextFiles: 100_000,
  maxLogBytes: 256 * 1024,
  maxConcurrentBuilds: 4,
};

export interface ImageServiceOptions {
  store: Store;
  storage: ImageStorage;
  /** A plain directory of the server's for blobs and build contexts (not the storage pool). */
  workDir: string;
  log: Logger;
  clock: Clock;
  buildBase?: BuildBase | undefined;
  runStep?: RunStep | undefined;
  limits?: Partial<ImageLimits> | undefined;
  /** Registries spoken to over plain http (`host:port`), e.g. a local one. */
  insecureRegistries?: string[] | undefined;
  /** Registries pulls may reach on private or loopback addresses; every other such host is refused. */
  privateRegistries?: string[] | undefined;
}

export interface BuildInput {
  name: string;
  dockerfile?: string | undefined;
  /** A tar holding the Dockerfile (unless given) and the files COPY reads. */
  context?: Readable | undefined;
  buildArgs?: Record<string, string> | undefined;
}

const NAME_PATTERN =
  /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/;
const MAX_NAME_LENGTH = 255;
const LAYERS_DIR = "layers";
const LOG_FLUSH_MS = 1000;

const sha256Hex = (text: string): string => createHash("sha256").update(text).digest("hex");

/** The content address of an image: its layer list and config. */
export function imageDigest(layers: readonly string[], config: ImageConfig): string {
  return `sha256:${sha256Hex(JSON.stringify(["polydev-image/1", layers, config]))}`;
}

/** Throws `invalid_request` saying what a valid image name looks like. */
export function checkImageName(name: string, what = "name"): void {
  if (name.length > MAX_NAME_LENGTH || !NAME_PATTERN.test(name)) {
    throw new PolydevError(
      "invalid_request",
      `image ${what} ${JSON.stringify(name.slice(0, 300))}: use lowercase path components separated by "/" and an optional ":tag" (e.g. alice/node:1), at most ${MAX_NAME_LENGTH} characters`,
      { details: { field: what } },
    );
  }
}

function configFromRun(config: ImportedImage["config"]): ImageConfig {
  const env: Record<string, string> = {};
  for (const item of config.Env) {
    const at = item.indexOf("=");
    if (at > 0) env[item.slice(0, at)] = item.slice(at + 1);
  }
  return {
    env,
    ...(config.WorkingDir ? { workdir: config.WorkingDir } : {}),
    ...(config.User ? { user: config.User } : {}),
    ...(config.Cmd.length > 0 ? { cmd: config.Cmd } : {}),
    ...(config.Entrypoint.length > 0 ? { entrypoint: config.Entrypoint } : {}),
  };
}

/** File bytes under `dir` (directories and links count nothing), never following a link. */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    else if (entry.isFile()) total += (await lstat(path)).size;
  }
  return total;
}

interface RunningBuild {
  ownerId: string | null;
  log: BuildLog;
  abort: AbortController;
  done: Promise<void>;
}

export class ImageService {
  private readonly store: Store;
  private readonly storage: ImageStorage;
  private readonly blobs: BlobStore;
  private readonly contextsDir: string;
  private readonly limits: ImageLimits;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly layerLock = new KeyedLock();
  private readonly baseLock = new KeyedLock();
  private readonly running = new Map<string, RunningBuild>();
  /** Builds accepted but not yet running, by owner and name, with their owner. */
  private readonly starting = new Map<string, string>();
  /** Imports and snapshots making layers right now (they run in their request). */
  private holding = 0;
  private closed = false;

  constructor(private readonly options: ImageServiceOptions) {
    this.store = options.store;
    this.storage = options.storage;
    this.blobs = new BlobStore(join(options.workDir, "blobs"));
    this.contextsDir = join(options.workDir, "contexts");
    this.limits = { ...DEFAULT_IMAGE_LIMITS, ...options.limits };
    this.log = options.log;
    this.clock = options.clock;
  }

  /**
   * At start-up: builds a crash interrupted become failed, layer directories without a record (an
   * unpack or a step the crash cut short) and unreferenced layers go, as do old build contexts.
   */
  async init(): Promise<void> {
    await mkdir(this.options.workDir, { recursive: true, mode: 0o700 });
    await this.blobs.init();
    await this.blobs.sweep();
    await rm(this.contextsDir, { recursive: true, force: true });
    await mkdir(this.contextsDir, { recursive: true, mode: 0o700 });
    const now = this.clock.now();
    for (const image of await this.store.images.listAll()) {
      if (image.state !== "building") continue;
      await this.store.images.update(image.id, {
        state: "failed",
        error: "interrupted by a restart",
        buildLog: `${image.buildLog}interrupted by a restart\n`,
        updatedAt: now,
      });
      this.log.warn({ image: image.name }, "an image build was interrupted by a restart");
    }
    const known = new Set<string>();
    for (const layer of await this.store.images.listLayers()) {
      if (await this.isDirectory(layer.dir)) known.add(layer.id);
      else await this.store.images.deleteLayer(layer.id);
    }
    const layersRoot = join(this.storage.root, LAYERS_DIR);
    const present = await readdir(layersRoot).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return [] as string[];
      throw error;
    });
    for (const name of present) {
      if (known.has(name)) continue;
      this.log.warn({ layer: name }, "removing a partial image layer left by a crash");
      await this.storage.removeDir(`${LAYERS_DIR}/${name}`);
    }
    await this.collectGarbage();
  }

  /** Stops running builds and pulls (they end failed) and waits for them. */
  async close(): Promise<void> {
    this.closed = true;
    const builds = [...this.running.values()];
    for (const build of builds)
      build.abort.abort(new PolydevError("conflict", "the server is shutting down"));
    await Promise.all(builds.map((build) => build.done));
  }

  async list(userId: string): Promise<ImageRecord[]> {
    return this.store.images.listVisible(userId);
  }

  /** The user's image of that name, else the system image of that name. */
  async get(userId: string, name: string): Promise<ImageRecord> {
    const image =
      (await this.store.images.getByName(userId, name)) ?? (await this.store.images.getByName(null, name));
    if (!image) throw new PolydevError("not_found", `image ${name} does not exist`, { details: { name } });
    return image;
  }

  /** The stored log and, while the build runs, the live one to follow. */
  async buildLog(userId: string, name: string): Promise<{ image: ImageRecord; live: BuildLog | undefined }> {
    const image = await this.get(userId, name);
    return { image, live: this.running.get(image.id)?.log };
  }

  async layerDirs(image: ImageRecord): Promise<string[]> {
    return this.layerDirsOf(image.layers, image.name);
  }

  private async layerDirsOf(ids: readonly string[], imageName = "the image"): Promise<string[]> {
    const dirs: string[] = [];
    for (const id of ids) {
      const layer = await this.store.images.getLayer(id);
      if (!layer) throw new PolydevError("internal", `layer ${id} of ${imageName} is missing`);
      dirs.push(layer.dir);
    }
    return dirs;
  }

  /** What the sandbox service hands a driver: the ready image's layer directories and config. */
  async toSandboxImage(userId: string, name: string): Promise<SandboxImage> {
    const image = await this.get(userId, name);
    if (image.state !== "ready" || image.digest === null) {
      throw new PolydevError(
        "conflict",
        image.state === "building"
          ? `image ${name} is still building; wait for it to be ready`
          : `image ${name} failed to build (${image.error ?? "no reason recorded"}); build it again`,
        { details: { name, state: image.state } },
      );
    }
    return this.sandboxImageOf(image, image.digest, await this.layerDirs(image));
  }

  /**
   * The image a sandbox was made from, by the digest its row keeps (a start, a fork): whatever
   * its name is now, and whoever owns it (a sandbox holds on to its image: see delete).
   */
  async sandboxImageByDigest(digest: string): Promise<SandboxImage> {
    const image = (await this.store.images.listAll()).find(
      (candidate) => candidate.digest === digest && candidate.state === "ready",
    );
    if (!image) {
      throw new PolydevError("conflict", `the image ${digest} this sandbox was made from is gone`, {
        details: { digest },
      });
    }
    return this.sandboxImageOf(image, digest, await this.layerDirs(image));
  }

  private sandboxImageOf(image: ImageRecord, digest: string, layers: string[]): SandboxImage {
    const config = image.config;
    return {
      name: image.name,
      digest,
      layers,
      sizeBytes: image.sizeBytes,
      env: config.env,
      ...(config.workdir === undefined ? {} : { workdir: config.workdir }),
      ...(config.user === undefined ? {} : { user: config.user }),
    };
  }

  /** A second name of the same image (same digest, same layers). */
  async tag(userId: string, name: string, newName: string): Promise<ImageRecord> {
    this.checkOwnName(newName);
    const image = await this.get(userId, name);
    if (image.state !== "ready") {
      throw new PolydevError("conflict", `image ${name} is ${image.state}; only a ready image can be tagged`);
    }
    const now = this.clock.now();
    return this.insertNamed({
      id: newId("img"),
      ownerId: userId,
      name: newName,
      digest: image.digest,
      state: "ready",
      layers: image.layers,
      config: image.config,
      sizeBytes: image.sizeBytes,
      source: image.source,
      buildLog: "",
      error: null,
      createdAt: now,
    });
  }

  /**
   * Deletes the user's image. The last name of a digest a live sandbox uses is `image_in_use`
   * (409); layers no other image lists are then removed.
   */
  async delete(userId: string, name: string): Promise<void> {
    const image = await this.store.images.getByName(userId, name);
    if (!image) {
      if (await this.store.images.getByName(null, name)) {
        throw new PolydevError("forbidden", `image ${name} is a system image and cannot be deleted`);
      }
      throw new PolydevError("not_found", `image ${name} does not exist`, { details: { name } });
    }
    if (this.running.has(image.id)) {
      throw new PolydevError("conflict", `image ${name} is building; wait for the build to end`);
    }
    if (image.digest !== null) {
      const others = (await this.store.images.listAll()).filter(
        (other) => other.id !== image.id && other.digest === image.digest,
      );
      const users = await this.store.images.countSandboxesUsing(image.digest);
      if (others.length === 0 && users > 0) {
        throw new PolydevError(
          "image_in_use",
          `image ${name} is used by ${users} sandbox${users === 1 ? "" : "es"}; destroy ${users === 1 ? "it" : "them"} first`,
          { details: { name, sandboxes: users } },
        );
      }
    }
    await this.store.images.delete(image.id);
    await this.collectGarbage();
  }

  /**
   * Removes layers no image lists and the blobs of finished imports and pulls. Anything that makes
   * layers (a build, a pull, an import, a snapshot) registers itself before its first layer and
   * collects when it ends, so this stops as soon as one is running: it never takes a layer that
   * is made but not yet listed.
   */
  async collectGarbage(): Promise<void> {
    const busy = (): boolean => this.running.size > 0 || this.holding > 0;
    if (busy()) return;
    for (const digest of await this.blobs.list()) {
      if (busy()) return;
      await this.blobs.remove(digest);
    }
    const referenced = new Set((await this.store.images.listAll()).flatMap((image) => image.layers));
    for (const layer of await this.store.images.listLayers()) {
      if (referenced.has(layer.id)) continue;
      if (busy()) return;
      await this.layerLock.run(layer.id, async () => {
        if (busy()) return;
        await this.store.images.deleteLayer(layer.id);
        await this.storage.removeDir(`${LAYERS_DIR}/${layer.id}`);
      });
    }
  }

  // ---- making images ----

  /** Imports an OCI layout or docker-archive tar (streamed); answers the ready image. */
  async importArchive(userId: string, name: string, input: Readable): Promise<ImageRecord> {
    this.checkOwnName(name);
    await this.checkNameFree(userId, name);
    return this.holdingLayers(async () => {
      const imported = await importImageArchive(input, this.blobs, {
        maxBytes: this.limits.maxImageBytes,
        maxEntries: this.limits.maxEntries,
      });
      const layer = await this.flattenedLayer(imported, undefined);
      const config = configFromRun(imported.config);
      return this.insertNamed({
        id: newId("img"),
        ownerId: userId,
        name,
        digest: imageDigest([layer.id], config),
        state: "ready",
        layers: [layer.id],
        config,
        sizeBytes: layer.sizeBytes,
        source: "import",
        buildLog: `imported ${imported.format} image ${imported.manifestDigest} (${imported.layers.length} layers)\n`,
        error: null,
        createdAt: this.clock.now(),
      });
    });
  }

  /**
   * Runs work that makes layers and then the record listing them (outside a background task):
   * garbage collection waits until it is done, so it cannot take a layer in between; afterwards
   * the collection runs (it drops the blobs, and the layer of a refused record).
   */
  private async holdingLayers<T>(work: () => Promise<T>): Promise<T> {
    this.holding += 1;
    try {
      return await work();
    } finally {
      this.holding -= 1;
      if (this.holding === 0 && this.running.size === 0) {
        await this.collectGarbage().catch((error: unknown) =>
          this.log.warn({ err: error }, "image garbage collection failed"),
        );
      }
    }
  }

  /** Starts pulling `reference` from its registry; answers the image in `building`. */
  async pull(userId: string, name: string, reference: string): Promise<ImageRecord> {
    this.checkOwnName(name);
    parseImageReference(reference);
    this.checkBuildSlots(userId);
    const starting = `${userId}\0${name}`;
    this.starting.set(starting, userId);
    let record: ImageRecord;
    try {
      await this.checkNameFree(userId, name);
      record = await this.insertNamed(this.newRecord(userId, name, "pull"));
    } finally {
      this.starting.delete(starting);
    }
    this.startTask(record, async (log, signal) => {
      log.line(`pulling ${reference}`);
      const imported = await pullImage(reference, this.blobs, {
        maxBytes: this.limits.maxImageBytes,
        insecureHosts: this.options.insecureRegistries ?? [],
        privateHosts: this.options.privateRegistries ?? [],
        signal,
      });
      log.line(`pulled ${imported.manifestDigest} (${imported.layers.length} layers); unpacking`);
      const layer = await this.flattenedLayer(imported, signal);
      const config = configFromRun(imported.config);
      return { layers: [layer.id], config };
    });
    return record;
  }

  /**
   * Starts a Dockerfile build; answers the image in `building`. A bad Dockerfile, an unknown FROM or
   * a bad context is refused here, before anything runs.
   */
  async build(userId: string, input: BuildInput): Promise<ImageRecord> {
    this.checkOwnName(input.name);
    const existing = await this.store.images.getByName(userId, input.name);
    const starting = `${userId}\0${input.name}`;
    if ((existing && this.running.has(existing.id)) || this.starting.has(starting)) {
      throw new PolydevError("conflict", `image ${input.name} is already building`);
    }
    this.checkBuildSlots(userId);
    // Held from here until the build is running (or refused): a second request for the same name,
    // or past the user's slots, cannot slip in while this one reads its context.
    this.starting.set(starting, userId);
    let contextDir: string | undefined;
    try {
      let dockerfile = input.dockerfile;
      if (input.context) {
        contextDir = join(this.contextsDir, newId("img"));
        await mkdir(contextDir, { mode: 0o700 });
        await unpackLayer(input.context, contextDir, {
          maxBytes: this.limits.maxContextBytes,
          maxEntries: this.limits.maxContextFiles,
        }).catch((error: unknown) => {
          if (!(error instanceof PolydevError)) throw error;
          throw new PolydevError(error.code, `the build context: ${error.message}`, {
            details: error.details ?? {},
            cause: error,
          });
        });
        dockerfile ??= await this.readContextDockerfile(contextDir);
      }
      if (dockerfile === undefined) {
        throw new PolydevError("invalid_request", "give a dockerfile, or upload a tar holding a Dockerfile");
      }
      const first = parseDockerfile(dockerfile, { buildArgs: input.buildArgs });
      if (!contextDir && first.steps.some((step) => step.kind === "COPY" || step.kind === "ADD")) {
        throw new PolydevError(
          "invalid_request",
          "COPY and ADD need a build context: upload a tar (Content-Type: application/x-tar) holding the Dockerfile and its files",
        );
      }
      const parent = await this.resolveFrom(userId, first);
      const now = this.clock.now();
      let record: ImageRecord;
      if (existing) {
        // A rebuild keeps the record (and, until it succeeds, the layers it lists).
        const updated = await this.store.images.update(existing.id, {
          state: "building",
          error: null,
          buildLog: "",
          updatedAt: now,
        });
        if (!updated) throw new PolydevError("conflict", `image ${input.name} was deleted meanwhile`);
        record = updated;
      } else {
        record = await this.insertNamed(this.newRecord(userId, input.name, "dockerfile"));
      }
      const text = dockerfile;
      const context = contextDir;
      contextDir = undefined; // the task owns it now
      this.startTask(
        record,
        (log, signal, partial) =>
          this.runDockerfile(record, parent, text, input.buildArgs, context, log, signal, partial),
        context,
      );
      return record;
    } finally {
      this.starting.delete(starting);
      if (contextDir) await rm(contextDir, { recursive: true, force: true });
    }
  }

  /**
   * Turns a sandbox's disk into an image: the layers of the image it was made from (`parentDigest`)
   * plus one new layer cloned (reflinked in the storage pool) from `upperDir`, an overlay upper
   * directory (whiteouts and opaque markers are kept: it is used as a lower layer as it is). The
   * sandbox should be stopped or frozen while this runs.
   */
  async registerSnapshot(
    userId: string,
    name: string,
    snapshot: {
      parentDigest: string;
      /** The sandbox's upper directory, cloned into the new layer; or: */
      upperDir?: string | undefined;
      /**
       * Writes the layer itself at `targetDir` (a driver's snapshot of a disk, a clone in
       * constant time) and answers the directory the layer's files are in.
       */
      take?: ((targetDir: string) => Promise<string>) | undefined;
      config?: ImageConfig | undefined;
    },
  ): Promise<ImageRecord> {
    this.checkOwnName(name);
    await this.checkNameFree(userId, name);
    const parent = (await this.store.images.listAll()).find(
      (image) =>
        image.digest === snapshot.parentDigest &&
        image.state === "ready" &&
        (image.ownerId === null || image.ownerId === userId),
    );
    if (!parent) {
      throw new PolydevError(
        "conflict",
        `the image ${snapshot.parentDigest} the sandbox was made from is gone; a snapshot needs its layers`,
      );
    }
    return this.holdingLayers(async () => {
      // A snapshot's content is known only by reading it all; a fresh key is cheaper and as unique.
      const hex = sha256Hex(`polydev-snapshot/1\0${userId}\0${name}\0${this.clock.now()}\0${newId("img")}`);
      const layer = await this.ensureLayer(hex, async (rel) => {
        const { take, upperDir } = snapshot;
        let dir: string;
        if (take !== undefined) dir = await take(join(this.storage.root, rel));
        else if (upperDir !== undefined) dir = await this.storage.cloneDir(upperDir, rel, null);
        else throw new PolydevError("invalid_request", "a snapshot needs the sandbox's changes");
        return { dir, bytes: await directoryBytes(dir) };
      });
      const layers = [...parent.layers, layer.id];
      const config = snapshot.config ?? parent.config;
      return this.insertNamed({
        id: newId("img"),
        ownerId: userId,
        name,
        digest: imageDigest(layers, config),
        state: "ready",
        layers,
        config,
        sizeBytes: parent.sizeBytes + layer.sizeBytes,
        source: "snapshot",
        buildLog: "",
        error: null,
        createdAt: this.clock.now(),
      });
    });
  }

  /**
   * Registers `polydev/base` from the root file system `buildBase` makes (it caches its own work),
   * as one layer. A ready one is left as is unless `rebuild`.
   */
  ensureBaseImage(
    onProgress: (line: string) => void = () => undefined,
    rebuild = false,
  ): Promise<ImageRecord> {
    // The setup step and a first use may both ask: the second waits and finds it ready.
    return this.baseLock.run(BASE_IMAGE_NAME, () => this.registerBase(onProgress, rebuild));
  }

  private async registerBase(onProgress: (line: string) => void, rebuild: boolean): Promise<ImageRecord> {
    const buildBase = this.options.buildBase;
    if (!buildBase) throw new PolydevError("feature_unavailable", "this server cannot build the base image");
    const existing = await this.store.images.getByName(null, BASE_IMAGE_NAME);
    if (existing?.state === "ready" && !rebuild) return existing;
    const now = this.clock.now();
    const record = existing
      ? await this.store.images.update(existing.id, {
          state: "building",
          error: null,
          buildLog: "",
          updatedAt: now,
        })
      : await this.insertNamed({ ...this.newRecord(null, BASE_IMAGE_NAME, "base") });
    if (!record) throw new PolydevError("conflict", "the base image record vanished");
    const done = this.startTask(record, async (log) => {
      const rootfs = await buildBase((line) => {
        log.line(line);
        onProgress(line);
      });
      // Keyed by when it was registered: a rebuild makes a new layer, the old one goes with its image.
      const hex = sha256Hex(`polydev-base/1\0${rootfs}\0${this.clock.now()}\0${newId("img")}`);
      const layer = await this.ensureLayer(hex, async (rel) => {
        const dir = await this.storage.cloneDir(rootfs, rel, null);
        return { dir, bytes: await directoryBytes(dir) };
      });
      return {
        layers: [layer.id],
        config: {
          env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
          user: "user",
        },
      };
    });
    await done;
    return this.readyBase();
  }

  private async readyBase(): Promise<ImageRecord> {
    const base = await this.store.images.getByName(null, BASE_IMAGE_NAME);
    if (base?.state !== "ready") {
      throw new PolydevError(
        "feature_unavailable",
        `the base image could not be built: ${base?.error ?? "its record is gone"}`,
        { details: { name: BASE_IMAGE_NAME } },
      );
    }
    return base;
  }

  // ---- internals ----

  private checkOwnName(name: string): void {
    checkImageName(name);
    if (name === "polydev" || name.startsWith("polydev/")) {
      throw new PolydevError(
        "invalid_request",
        `image names under polydev/ are reserved for system images; pick another name`,
        {
          details: { field: "name" },
        },
      );
    }
  }

  private checkBuildSlots(userId: string): void {
    let running = 0;
    for (const build of this.running.values()) if (build.ownerId === userId) running += 1;
    for (const owner of this.starting.values()) if (owner === userId) running += 1;
    if (running >= this.limits.maxConcurrentBuilds) {
      throw new PolydevError(
        "limit_exceeded",
        `you have ${running} image builds or pulls running (the most at once); wait for one to end`,
        { details: { running, max: this.limits.maxConcurrentBuilds } },
      );
    }
  }

  private async checkNameFree(userId: string, name: string): Promise<void> {
    if (await this.store.images.getByName(userId, name)) {
      throw new PolydevError("conflict", `image ${name} already exists; delete it or pick another name`, {
        details: { name },
      });
    }
  }

  private async insertNamed(record: Parameters<Store["images"]["insert"]>[0]): Promise<ImageRecord> {
    try {
      return await this.store.images.insert(record);
    } catch (error) {
      if (error instanceof PolydevError && error.code === "conflict") {
        throw new PolydevError(
          "conflict",
          `image ${record.name} already exists; delete it or pick another name`,
          {
            details: { name: record.name },
          },
        );
      }
      throw error;
    }
  }

  private newRecord(ownerId: string | null, name: string, source: ImageSource) {
    return {
      id: newId("img"),
      ownerId,
      name,
      digest: null,
      state: "building" as const,
      layers: [],
      config: { env: {} },
      sizeBytes: 0,
      source,
      buildLog: "",
      error: null,
      createdAt: this.clock.now(),
    };
  }

  private async isDirectory(path: string): Promise<boolean> {
    try {
      return (await lstat(path)).isDirectory();
    } catch {
      return false;
    }
  }

  /**
   * The layer `hex`, made by `create(rel)` unless a complete one exists. The record is written only
   * after the directory is complete; a failure removes the directory.
   */
  private ensureLayer(
    hex: string,
    create: (rel: string) => Promise<{ dir: string; bytes: number }>,
  ): Promise<ImageLayerRecord> {
    return this.layerLock.run(hex, async () => {
      const existing = await this.store.images.getLayer(hex);
      if (existing && (await this.isDirectory(existing.dir))) return existing;
      if (existing) await this.store.images.deleteLayer(hex);
      const rel = `${LAYERS_DIR}/${hex}`;
      await this.storage.removeDir(rel);
      try {
        const { dir, bytes } = await create(rel);
        return await this.store.images.putLayer({
          id: hex,
          dir,
          sizeBytes: bytes,
          createdAt: this.clock.now(),
        });
      } catch (error) {
        await this.storage.removeDir(rel);
        throw error;
      }
    });
  }

  /**
   * An imported image becomes one layer: the archive's layers applied in order with their
   * whiteouts (separate lower directories would need overlay whiteouts the unpacker does not
   * write). Keyed by its verified layer blobs, so the same image imported twice shares it.
   */
  private flattenedLayer(
    imported: ImportedImage,
    signal: AbortSignal | undefined,
  ): Promise<ImageLayerRecord> {
    const hex = sha256Hex(JSON.stringify(["polydev-flattened/1", imported.layers.map((l) => l.digest)]));
    return this.ensureLayer(hex, async (rel) => {
      const dir = await this.storage.createDir(rel, this.limits.maxImageBytes);
      const owners = new OwnerLog();
      const result = await assembleRootfs(this.blobs, imported.layers, dir, {
        maxBytes: this.limits.maxImageBytes,
        maxEntries: this.limits.maxEntries,
        onOwner: owners.onOwner,
        ...(signal ? { signal } : {}),
      });
      await owners.apply(dir);
      return { dir, bytes: result.bytes };
    });
  }

  private async readContextDockerfile(contextDir: string): Promise<string> {
    let handle: import("node:fs/promises").FileHandle;
    try {
      handle = await open(join(contextDir, "Dockerfile"), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      throw new PolydevError(
        "invalid_request",
        "the build context has no Dockerfile at its top (a regular file)",
      );
    }
    try {
      const stats = await handle.stat();
      if (!stats.isFile())
        throw new PolydevError("invalid_request", "the context's Dockerfile is not a regular file");
      if (stats.size > DOCKERFILE_MAX_BYTES) {
        throw new PolydevError(
          "payload_too_large",
          `the Dockerfile is larger than ${DOCKERFILE_MAX_BYTES} bytes`,
        );
      }
      return (await handle.readFile()).toString("utf8");
    } finally {
      await handle.close();
    }
  }

  private async resolveFrom(userId: string, plan: DockerfilePlan): Promise<ImageRecord> {
    const { from } = plan;
    const candidates = [`${from.name}:${from.tag}`];
    if (from.tag === "latest") candidates.push(from.name);
    let parent: ImageRecord | undefined;
    for (const candidate of candidates) {
      parent =
        (await this.store.images.getByName(userId, candidate)) ??
        (await this.store.images.getByName(null, candidate));
      if (parent) break;
    }
    const written = `${from.name}${from.tag === "latest" ? "" : `:${from.tag}`}`;
    if (!parent) {
      throw new PolydevError(
        "invalid_request",
        `FROM ${written}: no such image in the store; pull or import it first (GET /v1/images lists yours)`,
        { details: { from: written } },
      );
    }
    if (parent.state !== "ready" || parent.digest === null) {
      throw new PolydevError("invalid_request", `FROM ${written}: that image is ${parent.state}, not ready`, {
        details: { from: written },
      });
    }
    if (from.digest !== undefined && from.digest !== parent.digest) {
      throw new PolydevError(
        "invalid_request",
        `FROM ${written}@${from.digest}: the image has digest ${parent.digest}`,
        {
          details: { from: written },
        },
      );
    }
    return parent;
  }

  /** Runs `work` in the background with a live log; its result makes the image ready. */
  private startTask(
    record: ImageRecord,
    work: (
      log: BuildLog,
      signal: AbortSignal,
      partial: { layers: string[] },
    ) => Promise<{ layers: string[]; config: ImageConfig }>,
    contextDir?: string,
  ): Promise<void> {
    // The layers a failed build made so far stay listed on its record: garbage collection keeps
    // them, so a retry finds its earlier steps in the cache.
    const partial = { layers: [] as string[] };
    const log = new BuildLog(this.limits.maxLogBytes);
    const abort = new AbortController();
    let flushed = "";
    const flush = async (): Promise<void> => {
      if (log.content === flushed) return;
      flushed = log.content;
      await this.store.images.update(record.id, { buildLog: flushed, updatedAt: this.clock.now() });
    };
    const timer = setInterval(() => {
      flush().catch((error: unknown) => this.log.warn({ err: error }, "could not store a build log"));
    }, LOG_FLUSH_MS);
    timer.unref();
    const finish = async (): Promise<void> => {
      try {
        if (this.closed) throw new PolydevError("conflict", "the server is shutting down");
        const { layers, config } = await work(log, abort.signal, partial);
        const digest = imageDigest(layers, config);
        let sizeBytes = 0;
        for (const id of layers) sizeBytes += (await this.store.images.getLayer(id))?.sizeBytes ?? 0;
        const previous = await this.store.images.get(record.id);
        await this.keepUsedDigest(previous);
        log.line(`image ${record.name} ready: ${digest}`);
        await this.store.images.update(record.id, {
          state: "ready",
          digest,
          layers,
          config,
          sizeBytes,
          error: null,
          buildLog: log.content,
          updatedAt: this.clock.now(),
        });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log.line(`error: ${message}`);
        if (!(error instanceof PolydevError))
          this.log.error({ err: error, image: record.name }, "image build failed");
        await this.keepUsedDigest(await this.store.images.get(record.id));
        await this.store.images.update(record.id, {
          state: "failed",
          digest: null,
          layers: partial.layers,
          error: message,
          buildLog: log.content,
          updatedAt: this.clock.now(),
        });
      }
    };
    const done = finish()
      .catch((error: unknown) =>
        this.log.error({ err: error, image: record.name }, "could not record a build's end"),
      )
      .finally(async () => {
        clearInterval(timer);
        log.end();
        this.running.delete(record.id);
        if (contextDir) await rm(contextDir, { recursive: true, force: true }).catch(() => undefined);
        // Also drops the blobs a pull fetched and the layers a failed rebuild no longer lists.
        if (this.running.size === 0 && this.holding === 0) {
          await this.collectGarbage().catch((error: unknown) =>
            this.log.warn({ err: error }, "image garbage collection failed"),
          );
        }
      });
    this.running.set(record.id, { ownerId: record.ownerId, log, abort, done });
    return done;
  }

  /**
   * A rebuild moves the name to a new digest; if sandboxes still use the old one, it is kept under
   * `<name>@<digest>` so its layers stay until those sandboxes are gone and it is deleted.
   */
  private async keepUsedDigest(previous: ImageRecord | undefined): Promise<void> {
    if (!previous || previous.digest === null || previous.layers.length === 0) return;
    if ((await this.store.images.countSandboxesUsing(previous.digest)) === 0) return;
    await this.store.images
      .insert({
        ...previous,
        id: newId("img"),
        name: `${previous.name}@${previous.digest}`,
        state: "ready",
        buildLog: "",
        error: null,
      })
      .catch((error: unknown) => {
        if (!(error instanceof PolydevError && error.code === "conflict")) throw error;
      });
  }

  private async runDockerfile(
    record: ImageRecord,
    parent: ImageRecord,
    text: string,
    buildArgs: Record<string, string> | undefined,
    contextDir: string | undefined,
    log: BuildLog,
    signal: AbortSignal,
    partial: { layers: string[] },
  ): Promise<{ layers: string[]; config: ImageConfig }> {
    // A system image's user (polydev/base's "user") is who its sandboxes run as, not who builds
    // on it: steps FROM it run as root until a USER line, so `RUN apt-get install` works as it
    // does on any Debian image; an image that sets no USER keeps the system image's.
    const buildUser = parent.ownerId === null ? "root" : parent.config.user;
    const plan = parseDockerfile(text, {
      buildArgs,
      base: {
        env: parent.config.env,
        ...(parent.config.workdir === undefined ? {} : { workdir: parent.config.workdir }),
        ...(buildUser === undefined ? {} : { user: buildUser }),
      },
    });
    const setsUser = plan.steps.some((step) => step.kind === "USER");
    const finalUser = setsUser ? plan.config.user : parent.config.user;
    const copies = new Map<number, ContextFile[]>();
    const digests = new Map<number, string>();
    for (const [index, step] of plan.steps.entries()) {
      if (step.kind !== "COPY" && step.kind !== "ADD") continue;
      if (!contextDir)
        throw new PolydevError("invalid_request", `Dockerfile line ${step.line}: COPY needs a build context`);
      const { files } = await contextFiles(contextDir, (step as CopyStep).sources, {
        maxFiles: this.limits.maxContextFiles,
        maxBytes: this.limits.maxContextBytes,
        signal,
      });
      copies.set(index, files);
      digests.set(index, contextDigest(files));
    }
    const keys = new Map(
      layerCacheKeys(plan, parent.digest ?? "", (_step, index) => digests.get(index) ?? "").map((k) => [
        k.index,
        k,
      ]),
    );
    const layers = [...parent.layers];
    partial.layers = layers;
    const total = plan.steps.length + 1;
    const { from } = plan;
    log.line(`Step 1/${total} : FROM ${from.name}:${from.tag} (${parent.digest})`);
    for (const [index, step] of plan.steps.entries()) {
      signal.throwIfAborted();
      const header = `Step ${index + 2}/${total} : ${step.text}`;
      log.line(header);
      const keyed = keys.get(index);
      if (!step.layer || !keyed) continue;
      // Scoped by owner: a layer one user's RUN produced is never handed to another user's build.
      const hex = sha256Hex(`${record.ownerId ?? ""}\0${keyed.key}`);
      // Through the layer lock, so a garbage collection cannot take a cached layer being reused.
      let made = false;
      try {
        const below = [...layers];
        await this.ensureLayer(hex, async (rel) => {
          made = true;
          if (step.kind === "RUN")
            return this.runStepInto(rel, step, record, below, parent.config, log, signal);
          const dir = await this.storage.createDir(rel, this.limits.maxImageBytes);
          const lower = await this.layerDirsOf(below);
          return {
            dir,
            bytes: await writeCopyLayer(dir, contextDir ?? "", step, copies.get(index) ?? [], lower),
          };
        });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new PolydevError(
          error instanceof PolydevError && error.status < 500 ? error.code : "command_failed",
          `step ${index + 2}/${total} (line ${step.line}) failed: ${step.text}: ${message}`,
          { details: { line: step.line, step: index + 2 }, cause: error },
        );
      }
      log.line(made ? ` ---> ${hex.slice(0, 12)}` : " ---> using cache");
      layers.push(hex);
    }
    return {
      layers,
      config: {
        env: plan.config.env,
        ...(plan.config.workdir === undefined ? {} : { workdir: plan.config.workdir }),
        ...(finalUser === undefined ? {} : { user: finalUser }),
        ...(plan.config.cmd
          ? { cmd: plan.config.cmd.argv }
          : parent.config.cmd === undefined
            ? {}
            : { cmd: parent.config.cmd }),
        ...(plan.config.entrypoint
          ? { entrypoint: plan.config.entrypoint.argv }
          : parent.config.entrypoint === undefined
            ? {}
            : { entrypoint: parent.config.entrypoint }),
      },
    };
  }

  /** Runs a RUN step and makes its changes the layer directory `rel`. */
  private async runStepInto(
    rel: string,
    step: Extract<DockerfilePlan["steps"][number], { kind: "RUN" }>,
    record: ImageRecord,
    layers: readonly string[],
    parentConfig: ImageConfig,
    log: BuildLog,
    signal: AbortSignal,
  ): Promise<{ dir: string; bytes: number }> {
    const runStep = this.options.runStep;
    if (!runStep) {
      throw new PolydevError("feature_unavailable", "this server has no sandbox to run RUN steps in");
    }
    const dirs = await this.layerDirsOf(layers, record.name);
    const config: ImageConfig = {
      ...parentConfig,
      env: step.env,
      workdir: step.workdir,
      ...(step.user === undefined ? {} : { user: step.user }),
    };
    const parent: SandboxImage = {
      name: record.name,
      digest: `sha256:${sha256Hex(JSON.stringify(layers))}`,
      layers: dirs,
      env: config.env,
      ...(config.workdir === undefined ? {} : { workdir: config.workdir }),
      ...(config.user === undefined ? {} : { user: config.user }),
    };
    const result = await runStep({
      parent,
      argv: step.command.argv,
      // ARG values are visible to RUN as variables; ENV wins over ARG, as in Docker.
      env: { ...step.args, ...step.env },
      workdir: step.workdir,
      user: step.user,
      onOutput: (chunk) => log.append(chunk),
      signal,
    });
    const stepRel = relative(this.storage.root, result.layerDir);
    const removeStepDir = async (): Promise<void> => {
      if (!stepRel.startsWith("..") && stepRel !== "") await this.storage.removeDir(stepRel);
    };
    try {
      if (result.exitCode !== 0) {
        throw new PolydevError("command_failed", `the command exited with code ${result.exitCode}`, {
          details: { exitCode: result.exitCode },
        });
      }
      const dir = await this.storage.cloneDir(result.layerDir, rel, this.limits.maxImageBytes);
      return { dir, bytes: await directoryBytes(dir) };
    } finally {
      await removeStepDir();
    }
  }
}
