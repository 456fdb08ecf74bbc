import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { isPolydevError } from "@polydev/core";
import { type Headers, pack } from "tar-stream";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BlobStore } from "./blob-store.js";
import { MEDIA_TYPES } from "./image-import.js";
import { refusedAddressReason } from "./registry-connect.js";
import { pullImage } from "./registry-pull.js";
import { parseImageReference } from "./registry-reference.js";
import { assembleRootfs } from "./rootfs.js";
import {
  type FakeRegistry,
  pushOciLayout,
  type RealRegistry,
  realRegistryUnavailable,
  serveImage,
  sha256,
  startFakeRegistry,
  startRealRegistry,
} from "./testing/registry.js";

function tarOf(entries: { header: Headers; content?: string }[]): Promise<Buffer> {
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
const file = (name: string, content: string, mode = 0o644) => ({
  header: { name, type: "file" as const, mode, size: Buffer.byteLength(content) },
  content,
});
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

interface SampleImage {
  manifest: Buffer;
  manifestDigest: string;
  config: Buffer;
  blobs: Map<string, Buffer>;
  layerDigests: string[];
}

async function sampleImage(): Promise<SampleImage> {
  const base = await tarOf([
    { header: { name: "etc/", type: "directory", mode: 0o755 } },
    file("etc/keep", "kept\n"),
    file("etc/gone", "removed\n"),
  ]);
  const top = await tarOf([file("etc/.wh.gone", ""), file("etc/new", "added\n")]);
  const baseGz = gzipSync(base);
  // Compressed, as a registry push (skopeo) would otherwise compress it and change its digest.
  const topGz = gzipSync(top);
  const config = json({
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/bin:/bin"], Cmd: ["sh"], WorkingDir: "/work" },
    rootfs: { type: "layers", diff_ids: [sha256(base), sha256(top)] },
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256(config), size: config.length },
    layers: [
      { mediaType: MEDIA_TYPES.layerGzip, digest: sha256(baseGz), size: baseGz.length },
      { mediaType: MEDIA_TYPES.layerGzip, digest: sha256(topGz), size: topGz.length },
    ],
  });
  const blobs = new Map<string, Buffer>([
    [sha256(config), config],
    [sha256(baseGz), baseGz],
    [sha256(topGz), topGz],
  ]);
  return {
    manifest,
    manifestDigest: sha256(manifest),
    config,
    blobs,
    layerDigests: [sha256(baseGz), sha256(topGz)],
  };
}

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

/** Every blob in the store hashes to its name and no temp file is left. */
async function expectOnlyVerifiedBlobs(store: BlobStore): Promise<string[]> {
  const names = await readdir(store.directory);
  expect(names.filter((name) => name.startsWith(".tmp-"))).toEqual([]);
  for (const name of names) {
    const content = await readFile(join(store.directory, name));
    expect(createHash("sha256").update(content).digest("hex")).toBe(name);
  }
  return names.map((name) => `sha256:${name}`);
}

let dir: string;
let store: BlobStore;
const LIMITS = { maxBytes: 64 * 1024 * 1024 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "polydev-pull-"));
  store = new BlobStore(join(dir, "blobs"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("parseImageReference", () => {
  it("normalises like Docker", () => {
    expect(parseImageReference("debian")).toMatchObject({
      registry: "docker.io",
      repository: "library/debian",
      reference: "latest",
    });
    expect(parseImageReference("registry.example.com:5000/ns/name:tag")).toMatchObject({
      registry: "registry.example.com:5000",
      repository: "ns/name",
      tag: "tag",
    });
    const digest = `sha256:${"a".repeat(64)}`;
    expect(parseImageReference(`name@${digest}`)).toMatchObject({
      registry: "docker.io",
      repository: "library/name",
      reference: digest,
    });
    expect(parseImageReference("localhost/x:1")).toMatchObject({ registry: "localhost", repository: "x" });
    expect(parseImageReference("user/repo")).toMatchObject({
      registry: "docker.io",
      repository: "user/repo",
    });
    for (const bad of ["", "UPPER/case", "name@sha256:xyz", "a//b", "name:bad tag", "../x", "x:"]) {
      expect(() => parseImageReference(bad), bad).toThrow(/not an image reference/);
    }
  });
});

const unavailable = realRegistryUnavailable();
describe.skipIf(unavailable !== null)(
  `against Debian's docker-registry on loopback${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let registry: RealRegistry;
    let image: SampleImage;
    let layoutDir: string;
    /** The manifest as the registry holds it (skopeo may re-encode it on the way). */
    let pushedDigest: string;

    beforeAll(async () => {
      registry = await startRealRegistry();
      image = await sampleImage();
      layoutDir = await mkdtemp(join(tmpdir(), "polydev-layout-"));
      const layout = join(layoutDir, "layout");
      await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
      await writeFile(join(layout, "oci-layout"), json({ imageLayoutVersion: "1.0.0" }));
      await writeFile(
        join(layout, "index.json"),
        json({
          schemaVersion: 2,
          manifests: [
            { mediaType: MEDIA_TYPES.ociManifest, digest: image.manifestDigest, size: image.manifest.length },
          ],
        }),
      );
      for (const [digest, content] of [...image.blobs, [image.manifestDigest, image.manifest] as const]) {
        await writeFile(join(layout, "blobs", "sha256", digest.slice(7)), content);
      }
      await pushOciLayout(layout, `${registry.host}/test/image:1`);
      const head = await fetch(`http://${registry.host}/v2/test/image/manifests/1`, {
        method: "HEAD",
        headers: { accept: `${MEDIA_TYPES.ociManifest}, ${MEDIA_TYPES.dockerManifest}` },
      });
      pushedDigest = head.headers.get("docker-content-digest") ?? "";
    }, 120_000);
    afterAll(async () => {
      await registry?.stop();
      if (layoutDir) await rm(layoutDir, { recursive: true, force: true });
    });

    it("pulls by tag, every blob verified, and the layers assemble into a rootfs", async () => {
      const pulled = await pullImage(`${registry.host}/test/image:1`, store, {
        ...LIMITS,
        insecureHosts: [registry.host],
      });
      expect(pulled.format).toBe("registry");
      expect(pulled.manifestDigest).toBe(pushedDigest);
      expect(pulled.configDigest).toBe(sha256(image.config));
      expect(pulled.config).toMatchObject({ Env: ["PATH=/usr/bin:/bin"], Cmd: ["sh"], WorkingDir: "/work" });
      expect(pulled.layers.map((layer) => layer.digest)).toEqual(image.layerDigests);
      const stored = await expectOnlyVerifiedBlobs(store);
      expect(stored.sort()).toEqual([...image.blobs.keys(), pushedDigest].sort());
      const rootfs = join(dir, "rootfs");
      await assembleRootfs(store, pulled.layers, rootfs, { maxBytes: 1024 * 1024, maxEntries: 100 });
      expect(await readFile(join(rootfs, "etc/keep"), "utf8")).toBe("kept\n");
      expect(await readFile(join(rootfs, "etc/new"), "utf8")).toBe("added\n");
      expect((await readdir(join(rootfs, "etc"))).sort()).toEqual(["keep", "new"]);
    });

    it("pulls by digest", async () => {
      const pulled = await pullImage(`${registry.host}/test/image@${pushedDigest}`, store, {
        ...LIMITS,
        insecureHosts: [registry.host],
      });
      expect(pulled.manifestDigest).toBe(pushedDigest);
    });

    it("a missing tag is not_found, naming the image", async () => {
      await expectRefused(
        pullImage(`${registry.host}/test/image:nope`, store, { ...LIMITS, insecureHosts: [registry.host] }),
        "not_found",
        /test\/image:nope.*MANIFEST_UNKNOWN/,
      );
    });

    it("a digest the registry does not have is not_found", async () => {
      await expectRefused(
        pullImage(`${registry.host}/test/image@sha256:${"0".repeat(64)}`, store, {
          ...LIMITS,
          insecureHosts: [registry.host],
        }),
        "not_found",
      );
    });

    it("plain http is not used unless the host is listed as insecure", async () => {
      await expectRefused(
        // Allowed on loopback, but not insecure: https is tried, and the registry speaks http.
        pullImage(`${registry.host}/test/image:1`, store, {
          ...LIMITS,
          timeoutMs: 5000,
          privateHosts: [registry.host],
        }),
        "upstream_unreachable",
      );
    });
  },
);

describe("against a registry that lies or misbehaves (a node http server)", () => {
  let fake: FakeRegistry | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  async function serve(
    image: SampleImage,
    tweak?: (
      request: import("node:http").IncomingMessage,
      response: import("node:http").ServerResponse,
    ) => boolean,
  ): Promise<FakeRegistry> {
    const handler = serveImage(
      {
        manifests: new Map([
          ["1", { body: image.manifest, mediaType: MEDIA_TYPES.ociManifest }],
          [image.manifestDigest, { body: image.manifest, mediaType: MEDIA_TYPES.ociManifest }],
        ]),
        blobs: image.blobs,
      },
      "test/image",
    );
    fake = await startFakeRegistry((request, response) => {
      if (tweak?.(request, response)) return;
      if (!handler(request, response)) {
        response.writeHead(404);
        response.end();
      }
    });
    return fake;
  }

  it("pulls an index to its linux/amd64 manifest", async () => {
    const image = await sampleImage();
    const index = json({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [
        {
          mediaType: MEDIA_TYPES.ociManifest,
          digest: sha256("other"),
          size: 5,
          platform: { os: "linux", architecture: "arm64" },
        },
        {
          mediaType: MEDIA_TYPES.ociManifest,
          digest: image.manifestDigest,
          size: image.manifest.length,
          platform: { os: "linux", architecture: "amd64" },
        },
      ],
    });
    const server = await serve(image, (request, response) => {
      if (request.url === "/v2/test/image/manifests/multi") {
        response.writeHead(200, { "content-type": MEDIA_TYPES.ociIndex });
        response.end(index);
        return true;
      }
      return false;
    });
    const pulled = await pullImage(`${server.host}/test/image:multi`, store, {
      ...LIMITS,
      insecureHosts: [server.host],
    });
    expect(pulled.manifestDigest).toBe(image.manifestDigest);
  });

  it("an index entry whose size is not the manifest's is invalid_request", async () => {
    const image = await sampleImage();
    const index = json({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [
        {
          mediaType: MEDIA_TYPES.ociManifest,
          digest: image.manifestDigest,
          size: image.manifest.length - 1,
          platform: { os: "linux", architecture: "amd64" },
        },
      ],
    });
    const server = await serve(image, (request, response) => {
      if (request.url === "/v2/test/image/manifests/multi") {
        response.writeHead(200, { "content-type": MEDIA_TYPES.ociIndex });
        response.end(index);
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image:multi`, store, { ...LIMITS, insecureHosts: [server.host] }),
      "invalid_request",
      /its descriptor says/,
    );
  });

  it("a blob whose Content-Length is not its declared size is refused before its body is read", async () => {
    const image = await sampleImage();
    const [baseDigest] = image.layerDigests as [string];
    const content = image.blobs.get(baseDigest) as Buffer;
    const server = await serve(image, (request, response) => {
      if (request.url === `/v2/test/image/blobs/${baseDigest}`) {
        const longer = Buffer.concat([content, Buffer.alloc(10)]);
        response.writeHead(200, { "content-length": String(longer.length) });
        response.end(longer);
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [server.host] }),
      "invalid_request",
      new RegExp(`sends ${content.length + 10} bytes for blob ${baseDigest}`),
    );
    await expectOnlyVerifiedBlobs(store);
  });

  it("a layer whose content does not match its digest is invalid_request; only verified blobs stay", async () => {
    const image = await sampleImage();
    const [, topDigest] = image.layerDigests as [string, string];
    const wrong = Buffer.from(image.blobs.get(topDigest) as Buffer);
    wrong[20] = (wrong[20] as number) ^ 0xff;
    const server = await serve(image, (request, response) => {
      if (request.url === `/v2/test/image/blobs/${topDigest}`) {
        response.end(wrong);
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [server.host] }),
      "invalid_request",
      new RegExp(topDigest),
    );
    const stored = await expectOnlyVerifiedBlobs(store);
    expect(stored).not.toContain(topDigest);
    expect(stored).not.toContain(image.manifestDigest);
  });

  it("a manifest that does not match the digest pulled is invalid_request", async () => {
    const image = await sampleImage();
    const other = Buffer.concat([image.manifest, Buffer.from(" ")]);
    const server = await serve(image, (request, response) => {
      if (request.url === `/v2/test/image/manifests/${image.manifestDigest}`) {
        response.writeHead(200, { "content-type": MEDIA_TYPES.ociManifest });
        response.end(other);
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image@${image.manifestDigest}`, store, {
        ...LIMITS,
        insecureHosts: [server.host],
      }),
      "invalid_request",
    );
    expect(await store.list()).toEqual([]);
  });

  it("a manifest whose Docker-Content-Digest header disagrees is invalid_request", async () => {
    const image = await sampleImage();
    const server = await serve(image, (request, response) => {
      if (request.url === "/v2/test/image/manifests/1") {
        response.writeHead(200, {
          "content-type": MEDIA_TYPES.ociManifest,
          "docker-content-digest": sha256("something else"),
        });
        response.end(image.manifest);
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [server.host] }),
      "invalid_request",
      /the registry says/,
    );
  });

  it("garbage for a manifest is invalid_request", async () => {
    const image = await sampleImage();
    const server = await serve(image, (request, response) => {
      if (request.url === "/v2/test/image/manifests/1") {
        response.writeHead(200, { "content-type": MEDIA_TYPES.ociManifest });
        response.end("<html>not a manifest</html>");
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [server.host] }),
      "invalid_request",
      /not JSON/,
    );
  });

  it("an endless manifest is payload_too_large after maxJsonBytes", async () => {
    const image = await sampleImage();
    const server = await serve(image, (request, response) => {
      if (request.url === "/v2/test/image/manifests/1") {
        response.writeHead(200, { "content-type": MEDIA_TYPES.ociManifest });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const write = (): void => {
          while (response.write(chunk)) {}
          response.once("drain", write);
        };
        write();
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image:1`, store, {
        ...LIMITS,
        maxJsonBytes: 1024 * 1024,
        insecureHosts: [server.host],
      }),
      "payload_too_large",
    );
  });

  it("a blob declared larger than maxBytes is payload_too_large before it is fetched", async () => {
    const image = await sampleImage();
    const [, topDigest] = image.layerDigests as [string, string];
    const huge = Buffer.from(
      image.manifest
        .toString()
        .replace(
          new RegExp(`"digest":"${topDigest}","size":\\d+`),
          `"digest":"${topDigest}","size":${100 * 1024 ** 3}`,
        ),
    );
    const server = await serve(image, (request, response) => {
      if (request.url === "/v2/test/image/manifests/huge") {
        response.writeHead(200, { "content-type": MEDIA_TYPES.ociManifest });
        response.end(huge);
        return true;
      }
      return false;
    });
    const started = Date.now();
    await expectRefused(
      pullImage(`${server.host}/test/image:huge`, store, { ...LIMITS, insecureHosts: [server.host] }),
      "payload_too_large",
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(server.requests.some((request) => request.url.includes("/blobs/"))).toBe(false);
  });

  it("a blob sent longer than declared is refused promptly (endless stream)", async () => {
    const image = await sampleImage();
    const [, topDigest] = image.layerDigests as [string, string];
    const server = await serve(image, (request, response) => {
      if (request.url === `/v2/test/image/blobs/${topDigest}`) {
        response.writeHead(200, { "content-type": "application/octet-stream" });
        const chunk = Buffer.alloc(64 * 1024);
        const write = (): void => {
          while (response.write(chunk)) {}
          response.once("drain", write);
        };
        write();
        return true;
      }
      return false;
    });
    const started = Date.now();
    await expectRefused(
      pullImage(`${server.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [server.host] }),
      "invalid_request",
      /more than the \d+ bytes declared/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    await expectOnlyVerifiedBlobs(store);
  });

  it("a redirect loop is upstream_unreachable, and a redirect to a non-http URL is not followed", async () => {
    const image = await sampleImage();
    const [baseDigest] = image.layerDigests as [string];
    const server = await serve(image, (request, response) => {
      if (request.url === `/v2/test/image/blobs/${baseDigest}` || request.url === "/loop") {
        response.writeHead(302, { location: "/loop" });
        response.end();
        return true;
      }
      if (request.url === `/v2/test/image/blobs/${sha256(image.config)}`) {
        response.writeHead(307, { location: "file:///etc/passwd" });
        response.end();
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [server.host] }),
      "upstream_unreachable",
      /only http\(s\) is followed/,
    );
    image.blobs.delete(sha256(image.config));
    const server2 = server;
    // The config now comes normally, the base layer loops.
    server2.requests.length = 0;
    await fake?.close();
    const redirected = await serve(image, (request, response) => {
      if (request.url === `/v2/test/image/blobs/${baseDigest}` || request.url === "/loop") {
        response.writeHead(302, { location: "/loop" });
        response.end();
        return true;
      }
      if (request.url === `/v2/test/image/blobs/${sha256(image.config)}`) {
        response.end(image.config);
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${redirected.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [redirected.host] }),
      "upstream_unreachable",
      /redirected .* more than 5 times/,
    );
    expect(redirected.requests.filter((request) => request.url === "/loop").length).toBe(5);
  });

  it("a redirect to another origin carries no credentials, and the blob is still verified", async () => {
    const image = await sampleImage();
    const [baseDigest] = image.layerDigests as [string];
    const cdn = await startFakeRegistry((_request, response) => {
      response.end(image.blobs.get(baseDigest));
    });
    try {
      const server = await serve(image, (request, response) => {
        if (request.headers.authorization !== `Basic ${Buffer.from("u:secret-pw").toString("base64")}`) {
          response.writeHead(401, { "www-authenticate": 'Basic realm="test"' });
          response.end();
          return true;
        }
        if (request.url === `/v2/test/image/blobs/${baseDigest}`) {
          response.writeHead(307, { location: `http://${cdn.host}/blob` });
          response.end();
          return true;
        }
        return false;
      });
      const pulled = await pullImage(`${server.host}/test/image:1`, store, {
        ...LIMITS,
        insecureHosts: [server.host],
        // The CDN is on loopback too: a redirect there is refused unless it is listed.
        privateHosts: [cdn.host],
        credentials: { username: "u", password: "secret-pw" },
      });
      expect(pulled.layers[0]?.digest).toBe(baseDigest);
      expect(cdn.requests).toEqual([{ url: "/blob", authorization: undefined }]);
    } finally {
      await cdn.close();
    }
  });

  it("a registry that never answers is upstream_unreachable after timeoutMs, not a hang", async () => {
    fake = await startFakeRegistry(() => {
      // never answers
    });
    const started = Date.now();
    await expectRefused(
      pullImage(`${fake.host}/test/image:1`, store, {
        ...LIMITS,
        insecureHosts: [fake.host],
        timeoutMs: 300,
      }),
      "upstream_unreachable",
      /did not answer within 300 ms/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("a blob that stalls mid-body is upstream_unreachable after timeoutMs", async () => {
    const image = await sampleImage();
    const [baseDigest] = image.layerDigests as [string];
    const server = await serve(image, (request, response) => {
      if (request.url === `/v2/test/image/blobs/${baseDigest}`) {
        response.writeHead(200);
        response.write((image.blobs.get(baseDigest) as Buffer).subarray(0, 10));
        return true;
      }
      return false;
    });
    await expectRefused(
      pullImage(`${server.host}/test/image:1`, store, {
        ...LIMITS,
        insecureHosts: [server.host],
        timeoutMs: 300,
      }),
      "upstream_unreachable",
      /stalled/,
    );
    await expectOnlyVerifiedBlobs(store);
  });

  it("an abort mid-body stops the pull with the signal's reason, promptly", async () => {
    const image = await sampleImage();
    const [baseDigest] = image.layerDigests as [string];
    const controller = new AbortController();
    const server = await serve(image, (request, response) => {
      if (request.url === `/v2/test/image/blobs/${baseDigest}`) {
        response.writeHead(200);
        response.write("x");
        // Once the body is streaming (the headers' own abort path is not what is tested here).
        setTimeout(() => controller.abort(new Error("stop now")), 100);
        return true;
      }
      return false;
    });
    const started = Date.now();
    await expect(
      pullImage(`${server.host}/test/image:1`, store, {
        ...LIMITS,
        insecureHosts: [server.host],
        signal: controller.signal,
      }),
    ).rejects.toThrow("stop now");
    expect(Date.now() - started).toBeLessThan(5000);
    await expectOnlyVerifiedBlobs(store);
  });

  describe("token auth", () => {
    const TOKEN = "tok-123";
    async function tokenRegistry(image: SampleImage, password: string): Promise<FakeRegistry> {
      return serve(image, (request, response) => {
        const url = new URL(request.url ?? "", "http://x");
        if (url.pathname === "/token") {
          const expected = `Basic ${Buffer.from(`alice:${password}`).toString("base64")}`;
          if (
            request.headers.authorization !== expected ||
            url.searchParams.get("service") !== "test-registry" ||
            url.searchParams.get("scope") !== "repository:test/image:pull"
          ) {
            response.writeHead(401);
            response.end();
            return true;
          }
          response.writeHead(200, { "content-type": "application/json" });
          response.end(JSON.stringify({ token: TOKEN }));
          return true;
        }
        if (request.headers.authorization !== `Bearer ${TOKEN}`) {
          const host = request.headers.host;
          response.writeHead(401, {
            "www-authenticate": `Bearer realm="http://${host}/token",service="test-registry",scope="repository:test/image:pull"`,
            "content-type": "application/json",
          });
          response.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED" }] }));
          return true;
        }
        return false;
      });
    }

    it("answers the Bearer challenge with a token and uses it for manifests and blobs", async () => {
      const image = await sampleImage();
      const server = await tokenRegistry(image, "s3cret");
      const pulled = await pullImage(`${server.host}/test/image:1`, store, {
        ...LIMITS,
        insecureHosts: [server.host],
        credentials: { username: "alice", password: "s3cret" },
      });
      expect(pulled.manifestDigest).toBe(image.manifestDigest);
      const tokenRequests = server.requests.filter((request) => request.url.startsWith("/token"));
      expect(tokenRequests.length).toBe(1);
      const blobRequests = server.requests.filter((request) => request.url.includes("/blobs/"));
      expect(blobRequests.length).toBe(3);
      expect(blobRequests.every((request) => request.authorization === `Bearer ${TOKEN}`)).toBe(true);
    });

    it("wrong credentials are forbidden, and the password appears nowhere in the error", async () => {
      const image = await sampleImage();
      const server = await tokenRegistry(image, "right-password");
      const error = await expectRefused(
        pullImage(`${server.host}/test/image:1`, store, {
          ...LIMITS,
          insecureHosts: [server.host],
          credentials: { username: "alice", password: "wrong-password-XYZ" },
        }),
        "forbidden",
      );
      const seen = `${error.message} ${error.stack} ${JSON.stringify(error)} ${String(error.cause)}`;
      expect(seen).not.toContain("wrong-password-XYZ");
      expect(seen).not.toContain(Buffer.from("alice:wrong-password-XYZ").toString("base64"));
    });

    it("a token realm over plain http on a host not listed as insecure is refused", async () => {
      const image = await sampleImage();
      const server = await serve(image, (_request, response) => {
        response.writeHead(401, {
          "www-authenticate": 'Bearer realm="http://auth.example.invalid/token",service="x"',
        });
        response.end();
        return true;
      });
      await expectRefused(
        pullImage(`${server.host}/test/image:1`, store, {
          ...LIMITS,
          insecureHosts: [server.host],
          credentials: { username: "alice", password: "pw" },
        }),
        "upstream_unreachable",
        /not https/,
      );
    });
  });
});

/** A TCP listener on loopback that counts connections and never answers: did a pull reach it? */
async function listener(): Promise<{ host: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server = createTcpServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("request forgery: a pull connects only to public addresses unless the operator listed the host", () => {
  it("classifies addresses as the egress policy does: loopback, private, link-local, metadata, own, mapped", () => {
    for (const address of ["127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "169.254.169.254", "fe80::1"])
      expect(refusedAddressReason(address), address).toMatch(/loopback, link-local, metadata or reserved/);
    for (const address of ["10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "fd00::1"])
      expect(refusedAddressReason(address), address).toMatch(/private/);
    // An IPv4-mapped IPv6 address is the IPv4 address it carries.
    expect(refusedAddressReason("::ffff:127.0.0.1")).toMatch(/loopback/);
    expect(refusedAddressReason("::ffff:10.1.2.3")).toMatch(/private/);
    for (const address of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
      expect(refusedAddressReason(address), address).toBeUndefined();
    const own = Object.values(networkInterfaces())
      .flat()
      .find((entry) => entry !== undefined && !entry.internal && entry.family === "IPv4");
    if (own !== undefined) expect(refusedAddressReason(own.address)).toBeDefined();
  });

  it("refuses a registry on loopback that is not listed, before a single byte is sent", async () => {
    const target = await listener();
    try {
      const error = await expectRefused(
        pullImage(`${target.host}/test/image:1`, store, LIMITS),
        "registry_refused",
        /pulls may not connect to 127\.0\.0\.1 \(127\.0\.0\.1\): it is a loopback/,
      );
      expect(error.message).toContain("images.privateRegistries");
      // The same by name: localhost resolves to loopback.
      const port = target.host.split(":")[1];
      await expectRefused(pullImage(`localhost:${port}/test/image:1`, store, LIMITS), "registry_refused");
      // And over plain http when only insecureHosts lists another port.
      await expectRefused(
        pullImage(`${target.host}/test/image:1`, store, { ...LIMITS, insecureHosts: ["127.0.0.1:1"] }),
        "registry_refused",
      );
      expect(target.connections()).toBe(0);
    } finally {
      await target.close();
    }
  });

  it("refuses a listed registry's redirect to an address that is not listed (a private host, the metadata service)", async () => {
    const image = await sampleImage();
    const [baseDigest] = image.layerDigests as [string];
    const inside = await listener();
    let redirectTo = `http://${inside.host}/blob`;
    const registry = await startFakeRegistry((request, response) => {
      if (request.url === `/v2/test/image/blobs/${baseDigest}`) {
        response.writeHead(307, { location: redirectTo });
        response.end();
        return;
      }
      const handled = serveImage(
        {
          manifests: new Map([["1", { body: image.manifest, mediaType: MEDIA_TYPES.ociManifest }]]),
          blobs: image.blobs,
        },
        "test/image",
      )(request, response);
      if (!handled) {
        response.writeHead(404);
        response.end();
      }
    });
    try {
      await expectRefused(
        pullImage(`${registry.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [registry.host] }),
        "registry_refused",
        /may not connect to 127\.0\.0\.1 .*loopback/,
      );
      expect(inside.connections()).toBe(0);
      redirectTo = "http://169.254.169.254/latest/meta-data/";
      await expectRefused(
        pullImage(`${registry.host}/test/image:1`, store, { ...LIMITS, insecureHosts: [registry.host] }),
        "registry_refused",
        /169\.254\.169\.254.*link-local, metadata/,
      );
      // The registry itself was asked (it is listed); the redirect target never was.
      expect(registry.requests.some((r) => r.url === `/v2/test/image/blobs/${baseDigest}`)).toBe(true);
    } finally {
      await registry.close();
      await inside.close();
    }
  });
});
