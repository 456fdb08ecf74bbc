import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { isPolydevError } from "@polydev/core";
import { type Headers, pack } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BlobStore } from "./blob-store.js";
import { type ImportLimits, importImageArchive, MEDIA_TYPES } from "./image-import.js";
import { assembleRootfs } from "./rootfs.js";

interface Entry {
  header: Headers;
  content?: Buffer | string;
}

function tarOf(entries: readonly Entry[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const archive = pack();
    const chunks: Buffer[] = [];
    archive.on("data", (chunk: Buffer) => chunks.push(chunk));
    archive.on("end", () => resolve(Buffer.concat(chunks)));
    archive.on("error", reject);
    for (const { header, content } of entries) archive.entry(header, content);
    archive.finalize();
  });
}

const file = (name: string, content: Buffer | string, mode = 0o644): Entry => ({
  header: { name, type: "file", mode, size: Buffer.byteLength(content) },
  content,
});
const dir = (name: string): Entry => ({ header: { name, type: "directory", mode: 0o755 } });
const sha = (data: Buffer | string): string => `sha256:${createHash("sha256").update(data).digest("hex")}`;
const hexOf = (digest: string): string => digest.slice("sha256:".length);
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

const LIMITS: ImportLimits = { maxBytes: 64 * 1024 * 1024, maxEntries: 1000 };

async function expectRefused(promise: Promise<unknown>, code: string, message?: RegExp): Promise<Error> {
  const error = await promise.then(
    () => {
      throw new Error("expected a refusal");
    },
    (caught: unknown) => caught,
  );
  if (!isPolydevError(error)) throw error;
  expect(error.code).toBe(code);
  if (message) expect(error.message).toMatch(message);
  return error;
}

/** Two layers: the second whites out etc/gone of the first and adds etc/new. */
async function sampleLayers(): Promise<{ base: Buffer; top: Buffer }> {
  const base = await tarOf([
    dir("etc/"),
    file("etc/keep", "kept\n"),
    file("etc/gone", "removed by the next layer\n"),
    dir("bin/"),
    file("bin/tool", "#!/bin/sh\necho tool\n", 0o755),
  ]);
  const top = await tarOf([
    file("etc/.wh.gone", ""),
    file("etc/new", "added\n"),
    { header: { name: "bin/tool-link", type: "symlink", linkname: "tool" } },
  ]);
  return { base, top };
}

function configOf(diffIds: string[], run: Record<string, unknown> = {}): Buffer {
  return json({
    architecture: "amd64",
    os: "linux",
    created: "2026-01-01T00:00:00Z",
    config: {
      Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
      Cmd: ["sh", "-c", "echo hi"],
      WorkingDir: "/work",
      User: "user",
      Labels: { ignored: "yes" },
      ...run,
    },
    rootfs: { type: "layers", diff_ids: diffIds },
    history: [{ created_by: "test" }],
  });
}

interface OciOptions {
  /** Extra or replacement archive entries appended at the end. */
  extra?: Entry[];
  /** Blobs (by digest) left out of the archive. */
  omit?: string[];
  config?: Buffer;
  index?: (manifest: { digest: string; size: number }) => unknown;
}

async function ociArchive(options: OciOptions = {}): Promise<{ archive: Buffer; manifestDigest: string }> {
  const { base, top } = await sampleLayers();
  const topGzip = gzipSync(top);
  const config = options.config ?? configOf([sha(base), sha(top)]);
  const manifest = json({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha(config), size: config.length },
    layers: [
      { mediaType: MEDIA_TYPES.layerTar, digest: sha(base), size: base.length },
      { mediaType: MEDIA_TYPES.layerGzip, digest: sha(topGzip), size: topGzip.length },
    ],
  });
  const manifestRef = { digest: sha(manifest), size: manifest.length };
  const index = options.index?.(manifestRef) ?? {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: [{ mediaType: MEDIA_TYPES.ociManifest, ...manifestRef }],
  };
  const blobs = [base, topGzip, config, manifest].filter((blob) => !options.omit?.includes(sha(blob)));
  const archive = await tarOf([
    file("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" })),
    file("index.json", JSON.stringify(index)),
    dir("blobs/"),
    dir("blobs/sha256/"),
    ...blobs.map((blob) => file(`blobs/sha256/${hexOf(sha(blob))}`, blob)),
    ...(options.extra ?? []),
  ]);
  return { archive, manifestDigest: manifestRef.digest };
}

/** The same image as `docker save` (before Docker 25) writes it, a layer reached through a symlink. */
async function dockerArchive(): Promise<Buffer> {
  const { base, top } = await sampleLayers();
  const config = configOf([sha(base), sha(top)]);
  const configName = `${hexOf(sha(config))}.json`;
  return tarOf([
    dir("aaaa/"),
    file("aaaa/VERSION", "1.0"),
    file("aaaa/json", "{}"),
    file("aaaa/layer.tar", base),
    dir("bbbb/"),
    file("bbbb/layer.tar", top),
    dir("cccc/"),
    { header: { name: "cccc/layer.tar", type: "symlink", linkname: "../bbbb/layer.tar" } },
    file(configName, config),
    file("repositories", JSON.stringify({ "example/app": { latest: "cccc" } })),
    file(
      "manifest.json",
      JSON.stringify([
        {
          Config: configName,
          RepoTags: ["example/app:latest"],
          Layers: ["aaaa/layer.tar", "cccc/layer.tar"],
        },
      ]),
    ),
  ]);
}

/** Every path under `root` with its kind and content, for comparing trees. */
async function treeOf(root: string, prefix = ""): Promise<Record<string, string>> {
  const tree: Record<string, string> = {};
  for (const name of (await readdir(join(root, prefix))).sort()) {
    const relative = prefix === "" ? name : `${prefix}/${name}`;
    const path = join(root, relative);
    const stats = await import("node:fs/promises").then(({ lstat }) => lstat(path));
    if (stats.isDirectory()) {
      tree[relative] = "dir";
      Object.assign(tree, await treeOf(root, relative));
    } else if (stats.isSymbolicLink()) {
      tree[relative] = `-> ${await import("node:fs/promises").then(({ readlink }) => readlink(path))}`;
    } else {
      tree[relative] = `${(stats.mode & 0o777).toString(8)} ${await readFile(path, "utf8")}`;
    }
  }
  return tree;
}

const EXPECTED_TREE = {
  bin: "dir",
  "bin/tool": "755 #!/bin/sh\necho tool\n",
  "bin/tool-link": "-> tool",
  etc: "dir",
  "etc/keep": "644 kept\n",
  "etc/new": "644 added\n",
};

let base: string;
let store: BlobStore;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), "polydev-import-"));
  store = new BlobStore(join(base, "store"));
  await store.init();
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

/** A real `docker save` when a Docker daemon with a small image is at hand (not required). */
const dockerImage = process.env.POLYDEV_TEST_DOCKER_IMAGE ?? "busybox:latest";
const dockerSave = ((): Buffer | null => {
  try {
    return execFileSync("docker", ["save", dockerImage], {
      maxBuffer: 256 * 1024 * 1024,
      timeout: 60_000,
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    return null;
  }
})();

describe.skipIf(dockerSave === null)(
  `a real docker save of ${dockerImage}${dockerSave === null ? " (skipped: no running Docker daemon holds that image here; the archives built above cover the format)" : ""}`,
  () => {
    it("imports and assembles", async () => {
      const image = await importImageArchive(Readable.from([dockerSave ?? Buffer.alloc(0)]), store, {
        maxBytes: 512 * 1024 * 1024,
        maxEntries: 100_000,
      });
      expect(image.layers.length).toBeGreaterThan(0);
      const rootfs = join(base, "rootfs");
      await assembleRootfs(store, image.layers, rootfs, { maxBytes: 1 << 30, maxEntries: 1_000_000 });
      expect((await readdir(rootfs)).length).toBeGreaterThan(0);
    });
  },
);

describe("BlobStore", () => {
  it("stores by digest, is idempotent, opens, removes", async () => {
    const content = Buffer.from("hello blob");
    const first = await store.put(Readable.from([content]), { maxBytes: 100, expectedDigest: sha(content) });
    expect(first).toEqual({ digest: sha(content), size: content.length, created: true });
    const again = await store.put(Readable.from([content]), { maxBytes: 100 });
    expect(again.created).toBe(false);
    expect(await store.has(sha(content))).toBe(true);
    expect(await readFile(join(base, "store", "sha256", hexOf(sha(content))), "utf8")).toBe("hello blob");
    expect(await store.read(sha(content), 100)).toEqual(content);
    expect(await store.remove(sha(content))).toBe(true);
    expect(await store.has(sha(content))).toBe(false);
    expect(await store.remove(sha(content))).toBe(false);
    expect(await readdir(join(base, "store", "sha256"))).toEqual([]);
  });

  it("refuses a digest mismatch, an over-size blob and a malformed digest, leaving no file", async () => {
    await expectRefused(
      store.put(Readable.from([Buffer.from("a")]), { maxBytes: 10, expectedDigest: sha("b") }),
      "invalid_request",
      /has the digest/,
    );
    await expectRefused(store.put(Readable.from([Buffer.alloc(11)]), { maxBytes: 10 }), "payload_too_large");
    await expectRefused(store.open("sha256:../../etc/passwd"), "invalid_request");
    await expectRefused(store.open(`sha256:${"A".repeat(64)}`), "invalid_request");
    await expectRefused(store.has("md5:abc"), "invalid_request");
    await expectRefused(store.open(sha("absent")), "not_found");
    expect(await readdir(join(base, "store", "sha256"))).toEqual([]);
  });

  it("sweeps the temp file a crash mid-put leaves", async () => {
    await writeFile(join(base, "store", "sha256", ".tmp-999-deadbeef"), "half a blob");
    expect(await store.sweep()).toBe(1);
    expect(await readdir(join(base, "store", "sha256"))).toEqual([]);
  });
});

describe("importImageArchive and assembleRootfs", () => {
  it("imports an OCI layout of two layers and assembles the expected tree (whiteout across layers)", async () => {
    const { archive, manifestDigest } = await ociArchive();
    const image = await importImageArchive(Readable.from([archive]), store, LIMITS);
    expect(image.format).toBe("oci");
    expect(image.manifestDigest).toBe(manifestDigest);
    expect(image.config).toEqual({
      Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
      Cmd: ["sh", "-c", "echo hi"],
      Entrypoint: [],
      WorkingDir: "/work",
      User: "user",
    });
    expect(image.layers.map((layer) => layer.mediaType)).toEqual([
      MEDIA_TYPES.layerTar,
      MEDIA_TYPES.layerGzip,
    ]);
    for (const layer of image.layers) expect(await store.size(layer.digest)).toBe(layer.size);
    const rootfs = join(base, "rootfs");
    const totals = await assembleRootfs(store, image.layers, rootfs, { maxBytes: 1 << 20, maxEntries: 100 });
    expect(totals).toMatchObject({ layers: 2, whiteouts: 1 });
    expect(await treeOf(rootfs)).toEqual(EXPECTED_TREE);
  });

  it("imports a docker-archive of the same content to the same rootfs", async () => {
    const image = await importImageArchive(Readable.from([await dockerArchive()]), store, LIMITS);
    expect(image.format).toBe("docker-archive");
    expect(image.config.Cmd).toEqual(["sh", "-c", "echo hi"]);
    expect(image.layers).toHaveLength(2);
    expect(await store.has(image.manifestDigest)).toBe(true);
    const manifest = JSON.parse((await store.read(image.manifestDigest, 1 << 20)).toString()) as {
      layers: unknown;
    };
    expect(manifest.layers).toEqual(image.layers);
    const rootfs = join(base, "rootfs");
    await assembleRootfs(store, image.layers, rootfs, { maxBytes: 1 << 20, maxEntries: 100 });
    expect(await treeOf(rootfs)).toEqual(EXPECTED_TREE);
  });

  it("picks linux/amd64 from an index of several platforms and refuses an index without it", async () => {
    const platforms = (list: [string, string][]) => (manifest: { digest: string; size: number }) => ({
      schemaVersion: 2,
      manifests: list.map(([os, architecture], index) => ({
        mediaType: MEDIA_TYPES.ociManifest,
        // Only the amd64 one exists; the others would be refused as missing if chosen.
        ...(architecture === "amd64" ? manifest : { digest: sha(String(index)), size: 1 }),
        platform: { os, architecture },
      })),
    });
    const several = await ociArchive({
      index: platforms([
        ["linux", "arm64"],
        ["linux", "amd64"],
        ["windows", "amd64"],
      ]),
    });
    const image = await importImageArchive(Readable.from([several.archive]), store, LIMITS);
    expect(image.manifestDigest).toBe(several.manifestDigest);

    const none = await ociArchive({
      index: platforms([
        ["linux", "arm64"],
        ["linux", "s390x"],
      ]),
    });
    await expectRefused(
      importImageArchive(Readable.from([none.archive]), store, LIMITS),
      "invalid_request",
      /no linux\/amd64 manifest \(it has linux\/arm64, linux\/s390x\)/,
    );
  });

  it("refuses a blob whose content does not match its digest, storing nothing under that digest", async () => {
    const claimed = sha("something else");
    const { archive } = await ociArchive({ extra: [file(`blobs/sha256/${hexOf(claimed)}`, "tampered")] });
    await expectRefused(
      importImageArchive(Readable.from([archive]), store, LIMITS),
      "invalid_request",
      /has the digest/,
    );
    expect(await store.has(claimed)).toBe(false);
    expect((await readdir(store.directory)).filter((name) => name.startsWith(".tmp-"))).toEqual([]);
  });

  it("refuses a manifest naming a blob the archive does not hold", async () => {
    const { base: baseLayer } = await sampleLayers();
    const { archive } = await ociArchive({ omit: [sha(baseLayer)] });
    await expectRefused(
      importImageArchive(Readable.from([archive]), store, LIMITS),
      "invalid_request",
      new RegExp(`does not hold the blob ${sha(baseLayer)}`),
    );
  });

  it("refuses a blob already in the store but not in the archive (no borrowing of others' blobs)", async () => {
    const { base: baseLayer } = await sampleLayers();
    await store.put(Readable.from([baseLayer]), { maxBytes: 1 << 20 });
    const { archive } = await ociArchive({ omit: [sha(baseLayer)] });
    await expectRefused(
      importImageArchive(Readable.from([archive]), store, LIMITS),
      "invalid_request",
      /does not hold the blob/,
    );
  });

  it("refuses a config with huge or malformed fields", async () => {
    const { base: b, top: t } = await sampleLayers();
    const diffIds = [sha(b), sha(t)];
    for (const run of [
      { Env: [`HUGE=${"x".repeat(64 * 1024)}`] },
      { Cmd: Array.from({ length: 2000 }, () => "a") },
      { User: "u".repeat(1000) },
      { WorkingDir: 42 },
      { Env: ["NOEQUALS"] },
    ]) {
      const { archive } = await ociArchive({ config: configOf(diffIds, run) });
      await expectRefused(
        importImageArchive(Readable.from([archive]), store, LIMITS),
        "invalid_request",
        /image config .* is not valid/,
      );
    }
    const { archive } = await ociArchive({ config: configOf(diffIds) });
    await expectRefused(
      importImageArchive(Readable.from([archive]), store, { ...LIMITS, maxJsonBytes: 100 }),
      "payload_too_large",
    );
  });

  it("refuses a truncated archive", async () => {
    const { archive } = await ociArchive();
    // Cut inside an entry, and cut cleanly between entries (no end-of-archive blocks).
    await expectRefused(
      importImageArchive(Readable.from([archive.subarray(0, 2560 + 100)]), store, LIMITS),
      "invalid_request",
      /corrupt or truncated|truncated/,
    );
    const whole = await tarOf([file("oci-layout", '{"imageLayoutVersion":"1.0.0"}')]);
    await expectRefused(
      importImageArchive(Readable.from([whole.subarray(0, 1024)]), store, LIMITS),
      "invalid_request",
      /truncated/,
    );
  });

  it("refuses archives over the byte and entry limits with payload_too_large", async () => {
    const { archive } = await ociArchive();
    await expectRefused(
      importImageArchive(Readable.from([archive]), store, { maxBytes: 4096, maxEntries: 1000 }),
      "payload_too_large",
    );
    await expectRefused(
      importImageArchive(Readable.from([archive]), store, { maxBytes: 1 << 20, maxEntries: 3 }),
      "payload_too_large",
      /entries/,
    );
    const { archive: docker } = { archive: await dockerArchive() };
    const image = await importImageArchive(Readable.from([docker]), store, LIMITS);
    await expectRefused(
      assembleRootfs(store, image.layers, join(base, "rootfs"), { maxBytes: 10, maxEntries: 100 }),
      "payload_too_large",
    );
    expect(await readdir(join(base, "rootfs"))).toEqual([]);
  });

  it("refuses a descriptor whose size is not the blob's", async () => {
    const { archive } = await ociArchive({
      index: (manifest) => ({
        schemaVersion: 2,
        manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: manifest.digest, size: manifest.size + 1 }],
      }),
    });
    await expectRefused(
      importImageArchive(Readable.from([archive]), store, LIMITS),
      "invalid_request",
      /its descriptor says/,
    );
  });

  it("stops a bomb of zero blocks at the archive length limit", async () => {
    const { archive } = await ociArchive();
    const zeros = Buffer.alloc(64 * 1024);
    const bomb = Readable.from(
      (function* () {
        yield archive;
        for (let index = 0; index < 1024; index += 1) yield zeros;
      })(),
    );
    await expectRefused(
      importImageArchive(bomb, store, { maxBytes: 1 << 20, maxEntries: 20, maxJsonBytes: 64 * 1024 }),
      "payload_too_large",
      /archive is longer than/,
    );
  });

  it("stops on an abort mid-blob, leaving no temp file", async () => {
    const { archive } = await ociArchive();
    const input = new PassThrough();
    // oci-layout, index.json, two directories, then 100 bytes into the first blob.
    input.write(archive.subarray(0, 3584 + 100));
    const controller = new AbortController();
    const importing = importImageArchive(input, store, { ...LIMITS, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("client went away")), 50);
    await expect(importing).rejects.toThrow("client went away");
    expect((await readdir(store.directory)).filter((name) => name.startsWith(".tmp-"))).toEqual([]);
  });

  it("writes nothing outside the store for a path-traversal entry name", async () => {
    const sibling = join(base, "sibling");
    await mkdir(sibling);
    for (const name of ["blobs/sha256/../../x", "blobs/sha256/../../sibling/x", "../sibling/x", "/tmp/x"]) {
      const { archive } = await ociArchive({ extra: [file(name, "escaped")] });
      await expectRefused(importImageArchive(Readable.from([archive]), store, LIMITS), "invalid_request");
    }
    // Names under blobs/ that are not blob paths are refused too (they would never be looked up).
    for (const name of ["blobs/sha256/x/y", `blobs/sha512/${"a".repeat(128)}`, "blobs/sha256/ABC"]) {
      const { archive } = await ociArchive({ extra: [file(name, "odd")] });
      await expectRefused(
        importImageArchive(Readable.from([archive]), store, LIMITS),
        "invalid_request",
        /is not a blob path/,
      );
    }
    expect(await readdir(sibling)).toEqual([]);
    expect((await readdir(base)).sort()).toEqual(["sibling", "store"]);
    expect(await readdir(join(base, "store"))).toEqual(["sha256"]);
    expect((await readdir(store.directory)).every((name) => /^[0-9a-f]{64}$/.test(name))).toBe(true);
  });

  it("removes the partial rootfs when a layer fails, and refuses a damaged blob or a non-empty target", async () => {
    const evil = await tarOf([file("ok", "fine"), file("../escape", "no")]);
    const config = configOf([sha(evil)]);
    const manifest = json({
      schemaVersion: 2,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha(config), size: config.length },
      layers: [{ mediaType: MEDIA_TYPES.layerTar, digest: sha(evil), size: evil.length }],
    });
    const archive = await tarOf([
      file("oci-layout", '{"imageLayoutVersion":"1.0.0"}'),
      file(
        "index.json",
        JSON.stringify({
          schemaVersion: 2,
          manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: sha(manifest), size: manifest.length }],
        }),
      ),
      ...[evil, config, manifest].map((blob) => file(`blobs/sha256/${hexOf(sha(blob))}`, blob)),
    ]);
    const image = await importImageArchive(Readable.from([archive]), store, LIMITS);
    const rootfs = join(base, "rootfs");
    await expectRefused(
      assembleRootfs(store, image.layers, rootfs, { maxBytes: 1 << 20, maxEntries: 100 }),
      "invalid_request",
      /'\.\.'/,
    );
    expect(await readdir(rootfs)).toEqual([]);
    expect(await readdir(base)).not.toContain("escape");

    const good = await importImageArchive(Readable.from([await dockerArchive()]), store, LIMITS);
    const [first] = good.layers;
    if (first === undefined) throw new Error("no layer");
    const path = store.pathOf(first.digest);
    await chmod(path, 0o644);
    const damaged = await readFile(path);
    damaged[600] = (damaged[600] ?? 0) ^ 1;
    await writeFile(path, damaged);
    await expectRefused(
      assembleRootfs(store, good.layers, rootfs, { maxBytes: 1 << 20, maxEntries: 100 }),
      "internal",
      /damaged/,
    );
    expect(await readdir(rootfs)).toEqual([]);
    await writeFile(join(rootfs, "occupied"), "");
    await expectRefused(
      assembleRootfs(store, good.layers, rootfs, { maxBytes: 1 << 20, maxEntries: 100 }),
      "invalid_request",
      /not empty/,
    );
    expect((await stat(join(rootfs, "occupied"))).isFile()).toBe(true);
  });
});
