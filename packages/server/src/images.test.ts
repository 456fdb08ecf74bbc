/**
 * The image store over HTTP: archives built here, imported, built on with Dockerfiles, tagged,
 * deleted, pulled from Debian's docker-registry on loopback. Most RUN steps go through a recording
 * stand-in of the runner port (RecordingRunStep: the command is not executed, the one double);
 * one suite runs them for real on overlayfs mounts of the layer directories (OverlayRunStep, root
 * only). Everything else is real: layer directories on disk with their owners, SQLite, the server.
 */
import { execFile } from "node:child_process";
import { chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { MEDIA_TYPES } from "@polydev/images";
import type { RealRegistry } from "@polydev/images/testing";
import { pushOciLayout, realRegistryUnavailable, startRealRegistry } from "@polydev/images/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ImageStoreFactory } from "./server.js";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";
import { dir, file, json, ociArchive, sampleImage, sha, tarOf } from "./testing/image-archives.js";
import { OverlayRunStep, overlayRunStepUnavailable } from "./testing/overlay-run-step.js";
import { PlainImageStorage } from "./testing/plain-image-storage.js";
import { RecordingRunStep } from "./testing/recording-run-step.js";

async function importArchive(api: ApiClient, name: string, archive: Buffer) {
  const response = await fetch(`${api.url}/v1/images/import?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${api.key}`, "content-type": "application/x-tar" },
    body: archive,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & ImageBody };
}

async function uploadContext(api: ApiClient, name: string, context: Buffer) {
  const response = await fetch(`${api.url}/v1/images?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${api.key}`, "content-type": "application/x-tar" },
    body: context,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & ImageBody };
}

interface ImageBody {
  name: string;
  state: string;
  digest: string | null;
  layers: string[];
  config: { env: Record<string, string>; workdir?: string; user?: string; cmd?: string[] };
  error: string | null;
  log: string;
  sizeBytes: number;
  system: boolean;
  error_?: never;
}

const path = (name: string) => `/v1/images/${encodeURIComponent(name)}`;

/** Polls until the image leaves `building` (no time is asserted; the test timeout bounds it). */
async function settled(api: ApiClient, name: string): Promise<ImageBody> {
  for (;;) {
    const response = await api.call<ImageBody>("GET", path(name));
    if (response.status !== 200)
      throw new Error(`GET ${name}: ${response.status} ${JSON.stringify(response.body)}`);
    if (response.body.state !== "building") return response.body;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function treeOf(root: string, prefix = ""): Promise<Record<string, string>> {
  const tree: Record<string, string> = {};
  for (const name of (await readdir(join(root, prefix))).sort()) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const stats = await lstat(join(root, rel));
    const mode = (stats.mode & 0o7777).toString(8);
    tree[rel] =
      `${stats.isDirectory() ? "d" : stats.isSymbolicLink() ? "l" : "f"} ${mode} ${stats.uid}:${stats.gid}`;
    if (stats.isDirectory()) Object.assign(tree, await treeOf(root, rel));
  }
  return tree;
}

const execFileAsync = promisify(execFile);
const registryUnavailable = realRegistryUnavailable();

describe("the image store over HTTP", () => {
  let test: TestServer;
  let runner: RecordingRunStep;
  let registry: RealRegistry | undefined;
  let storageRoot: string;

  const images: ImageStoreFactory = ({ dataDir }) => {
    const storage = new PlainImageStorage(join(dataDir, "storage"));
    storageRoot = storage.root;
    runner = new RecordingRunStep(storage);
    return {
      storage,
      runStep: runner.run,
      limits: { maxImageBytes: 4 * 1024 * 1024, maxContextBytes: 1024 * 1024, maxConcurrentBuilds: 2 },
      insecureRegistries: registry ? [registry.host] : [],
    };
  };

  beforeAll(async () => {
    if (registryUnavailable === null) registry = await startRealRegistry();
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
  });
  beforeEach(async () => {
    test = await startTestServer({}, { images });
  });
  afterEach(async () => {
    await test.close();
  });

  const layerDir = (id: string) => join(storageRoot, "layers", id);

  it("imports an OCI archive into one layer directory: whiteouts applied, owners and setuid kept, root-only parent", async () => {
    const imported = await importArchive(test.api, "alice/sample:1", await ociArchive());
    expect(imported.status).toBe(201);
    expect(imported.body).toMatchObject({
      name: "alice/sample:1",
      state: "ready",
      system: false,
      config: {
        env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
        workdir: "/work",
        user: "user",
        cmd: ["sh"],
      },
    });
    expect(imported.body.layers).toHaveLength(1);
    const id = imported.body.layers[0] ?? "";
    expect(await treeOf(layerDir(id))).toEqual({
      bin: "d 755 0:0",
      "bin/tool": "f 4755 0:0",
      etc: "d 755 0:0",
      "etc/keep": "f 644 0:0",
      "etc/new": "f 644 0:0",
      home: "d 755 0:0",
      "home/user": "d 755 1000:1000",
      "home/user/.profile": "f 644 1000:1000",
    });
    expect((await lstat(join(storageRoot, "layers"))).mode & 0o777).toBe(0o700);

    const adminId = (await test.server.store.users.getByName("admin"))?.id ?? "";
    await expect(test.server.images?.toSandboxImage(adminId, "alice/none:1")).rejects.toMatchObject({
      code: "not_found",
    });
    const listed = await test.api.call<{ images: ImageBody[] }>("GET", "/v1/images");
    expect(listed.body.images.map((i) => i.name)).toEqual(["alice/sample:1"]);

    // The same content under another name shares the layer directory.
    const again = await importArchive(test.api, "alice/sample:2", await ociArchive());
    expect(again.body.layers).toEqual(imported.body.layers);
    expect(again.body.digest).toBe(imported.body.digest);
    const taken = await importArchive(test.api, "alice/sample:2", await ociArchive());
    expect(taken.status).toBe(409);
  });

  it("refuses archives that escape, bomb or lie, with 4xx codes, and leaves no layer behind", async () => {
    const escaping = await importArchive(
      test.api,
      "alice/evil:1",
      await ociArchive([
        { header: { name: "../../../escaped", type: "file", size: 1, mode: 0o644 }, content: "x" },
      ]),
    );
    expect(escaping.status).toBe(400);
    expect(escaping.body).toMatchObject({ error: { code: "invalid_request" } });
    // 8 MiB of zeros gzip to a few KiB: the unpack stops at the 4 MiB limit.
    const bomb = await importArchive(
      test.api,
      "alice/bomb:1",
      await ociArchive([file("zeros", Buffer.alloc(8 * 1024 * 1024))]),
    );
    expect([400, 413]).toContain(bomb.status);
    expect(bomb.body).toMatchObject({ error: { code: "payload_too_large" } });
    const garbage = await importArchive(test.api, "alice/garbage:1", Buffer.from("not a tar at all"));
    expect(garbage.status).toBe(400);
    const badName = await importArchive(test.api, "Alice/../x", await ociArchive());
    expect(badName.status).toBe(400);
    const reserved = await importArchive(test.api, "polydev/base", await ociArchive());
    expect(reserved.status).toBe(400);
    expect(await readdir(join(storageRoot, "layers")).catch(() => [])).toEqual([]);
    expect((await test.api.call<{ images: unknown[] }>("GET", "/v1/images")).body.images).toEqual([]);
  });

  it("builds a Dockerfile on an imported image: ENV/WORKDIR/USER in the config, RUN through the runner, a cached rebuild runs nothing", async () => {
    const base = await importArchive(test.api, "alice/sample:1", await ociArchive());
    const dockerfile = [
      "FROM alice/sample:1",
      "ENV GREETING=hello",
      "WORKDIR /app",
      "RUN echo $GREETING > greeting",
      "USER 1000",
      'CMD ["node", "server.js"]',
    ].join("\n");
    const started = await test.api.call<ImageBody>("POST", "/v1/images", { name: "alice/app:1", dockerfile });
    expect(started.status).toBe(202);
    expect(started.body.state).toBe("building");
    const built = await settled(test.api, "alice/app:1");
    expect(built).toMatchObject({
      state: "ready",
      error: null,
      config: {
        env: { GREETING: "hello", PATH: "/usr/bin:/bin" },
        workdir: "/app",
        user: "1000",
        cmd: ["node", "server.js"],
      },
    });
    expect(built.layers.slice(0, 1)).toEqual(base.body.layers);
    expect(built.layers).toHaveLength(2);
    expect(built.log).toContain("Step 4/6 : RUN echo $GREETING > greeting");
    expect(built.log).toContain("ran: /bin/sh -c echo $GREETING > greeting");
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]).toMatchObject({ workdir: "/app", env: { GREETING: "hello" }, user: "user" });
    expect(runner.calls[0]?.parent.layers).toEqual([layerDir(base.body.layers[0] ?? "")]);
    // The step's directory became the layer, and the step's own directory is gone.
    expect(await readdir(layerDir(built.layers[1] ?? ""))).toEqual(["ran-1"]);
    expect(await readdir(join(storageRoot, "steps"))).toEqual([]);

    const sandboxImage = await test.server.images?.toSandboxImage(
      (await test.server.store.users.getByName("admin"))?.id ?? "",
      "alice/app:1",
    );
    expect(sandboxImage).toEqual({
      name: "alice/app:1",
      digest: built.digest,
      layers: built.layers.map(layerDir),
      env: built.config.env,
      workdir: "/app",
      user: "1000",
      sizeBytes: built.sizeBytes,
    });

    const rebuilt = await test.api.call<ImageBody>("POST", "/v1/images", { name: "alice/app:1", dockerfile });
    expect(rebuilt.status).toBe(202);
    const again = await settled(test.api, "alice/app:1");
    expect(again.state).toBe("ready");
    expect(again.digest).toBe(built.digest);
    expect(again.log).toContain("using cache");
    expect(runner.calls).toHaveLength(1);
  });

  it("builds from an uploaded context: COPY writes a layer with --chown owners; a failing RUN names its step", async () => {
    await importArchive(test.api, "alice/sample:1", await ociArchive());
    const context = await tarOf([
      file(
        "Dockerfile",
        [
          "FROM alice/sample:1",
          "COPY --chown=1000:1000 src/ /app/",
          "COPY run.sh /usr/local/bin/run.sh",
          "COPY run.sh /bin",
          "COPY run.sh /opt/tool",
        ].join("\n"),
      ),
      dir("src/"),
      file("src/index.js", "console.log(1)\n"),
      dir("src/lib/"),
      file("src/lib/util.js", "module.exports = 2\n"),
      file("run.sh", "#!/bin/sh\n", 0o755),
    ]);
    const started = await uploadContext(test.api, "alice/ctx:1", context);
    expect(started.status).toBe(202);
    const built = await settled(test.api, "alice/ctx:1");
    expect(built.state).toBe("ready");
    expect(built.layers).toHaveLength(5);
    expect(await treeOf(layerDir(built.layers[1] ?? ""))).toEqual({
      app: "d 755 1000:1000",
      "app/index.js": "f 644 1000:1000",
      "app/lib": "d 755 1000:1000",
      "app/lib/util.js": "f 644 1000:1000",
    });
    expect(await readFile(join(layerDir(built.layers[2] ?? ""), "usr/local/bin/run.sh"), "utf8")).toBe(
      "#!/bin/sh\n",
    );
    expect(await treeOf(layerDir(built.layers[2] ?? ""))).toMatchObject({
      "usr/local/bin/run.sh": "f 755 0:0",
    });
    // /bin is a directory in the image: the file goes into it, as Docker does; /opt/tool is new.
    expect(await treeOf(layerDir(built.layers[3] ?? ""))).toEqual({
      bin: "d 755 0:0",
      "bin/run.sh": "f 755 0:0",
    });
    expect(await treeOf(layerDir(built.layers[4] ?? ""))).toEqual({
      opt: "d 755 0:0",
      "opt/tool": "f 755 0:0",
    });

    const failing = await test.api.call<ImageBody>("POST", "/v1/images", {
      name: "alice/broken:1",
      dockerfile: "FROM alice/sample:1\nRUN true\nRUN make; exit 3\n",
    });
    expect(failing.status).toBe(202);
    const failed = await settled(test.api, "alice/broken:1");
    expect(failed.state).toBe("failed");
    expect(failed.error).toMatch(
      /step 3\/3 \(line 3\) failed: RUN make; exit 3: the command exited with code 3/,
    );
    expect(failed.log).toContain("ran: /bin/sh -c make; exit 3");
    expect(failed.log).toContain("error: step 3/3");
    expect(failed.digest).toBeNull();
    expect(await readdir(join(storageRoot, "steps"))).toEqual([]);
    // The step that worked stays cached for the retry, even across a garbage collection.
    expect(failed.layers).toHaveLength(2);
    await test.server.images?.collectGarbage();
    const calls = runner.calls.length;
    await test.api.call("POST", "/v1/images", {
      name: "alice/broken:1",
      dockerfile: "FROM alice/sample:1\nRUN true\nRUN make\n",
    });
    const fixed = await settled(test.api, "alice/broken:1");
    expect(fixed.state).toBe("ready");
    expect(fixed.layers.slice(0, 2)).toEqual(failed.layers);
    expect(runner.calls.slice(calls).map((call) => call.argv.at(-1))).toEqual(["make"]);
  });

  it("refuses bad builds before running anything: unknown FROM, a bad Dockerfile, COPY without context, a context that escapes or is too big", async () => {
    await importArchive(test.api, "alice/sample:1", await ociArchive());
    const unknown = await test.api.call("POST", "/v1/images", {
      name: "alice/x:1",
      dockerfile: "FROM nobody/nothing:1\n",
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({
      error: {
        code: "invalid_request",
        message: expect.stringMatching(/FROM nobody\/nothing:1: no such image/),
      },
    });
    const bad = await test.api.call("POST", "/v1/images", {
      name: "alice/x:1",
      dockerfile: "FROM alice/sample:1\nHEALTHCHECK NONE\n",
    });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { details: { line: 2 } } });
    const copy = await test.api.call("POST", "/v1/images", {
      name: "alice/x:1",
      dockerfile: "FROM alice/sample:1\nCOPY a /a\n",
    });
    expect(copy.status).toBe(400);
    const shape = await test.api.call("POST", "/v1/images", { name: "alice/x:1" });
    expect(shape.status).toBe(400);
    const traversal = await uploadContext(
      test.api,
      "alice/x:1",
      await tarOf([file("Dockerfile", "FROM alice/sample:1\n"), file("../../outside", "x")]),
    );
    expect(traversal.status).toBe(400);
    const big = await uploadContext(
      test.api,
      "alice/x:1",
      await tarOf([file("Dockerfile", "FROM alice/sample:1\n"), file("big", Buffer.alloc(2 * 1024 * 1024))]),
    );
    expect(big.status).toBe(413);
    const noDockerfile = await uploadContext(test.api, "alice/x:1", await tarOf([file("a", "x")]));
    expect(noDockerfile.status).toBe(400);
    expect(runner.calls).toHaveLength(0);
    expect(
      (await test.api.call<{ images: ImageBody[] }>("GET", "/v1/images")).body.images.map((i) => i.name),
    ).toEqual(["alice/sample:1"]);
    expect(await readdir(join(test.dataDir, "images", "contexts"))).toEqual([]);
  });

  it("tags, hides images from other users, refuses to delete one a sandbox uses (409), and collects unused layers", async () => {
    const imported = await importArchive(test.api, "alice/sample:1", await ociArchive());
    const tagged = await test.api.call<ImageBody>("POST", `${path("alice/sample:1")}/tag`, {
      name: "alice/sample:latest",
    });
    expect(tagged.status).toBe(201);
    expect(tagged.body.digest).toBe(imported.body.digest);

    const bob = await createUser(test.api, "bob");
    expect((await bob.call("GET", path("alice/sample:1"))).status).toBe(404);
    expect((await bob.call("DELETE", path("alice/sample:1"))).status).toBe(404);
    expect((await bob.call<{ images: unknown[] }>("GET", "/v1/images")).body.images).toEqual([]);

    // The sandbox service will record the digest at create; the row is written directly here.
    const admin = await test.server.store.users.getByName("admin");
    const now = Date.now();
    await test.server.store.sandboxes.insert({
      id: "sbx_uses_image",
      userId: admin?.id ?? "",
      state: "running",
      driver: "namespace",
      cpu: 1,
      memoryMb: 256,
      diskMb: 1024,
      pidsMax: 64,
      network: "none",
      egressPolicy: null,
      env: {},
      metadata: {},
      timeoutMs: 60_000,
      idleTimeoutMs: 60_000,
      createdAt: now,
      expiresAt: now + 60_000,
      image: imported.body.digest,
    });
    // Another name of the digest remains: deleting this one is fine.
    expect((await test.api.call("DELETE", path("alice/sample:latest"))).status).toBe(204);
    const inUse = await test.api.call("DELETE", path("alice/sample:1"));
    expect(inUse.status).toBe(409);
    expect(inUse.body).toMatchObject({ error: { code: "image_in_use", details: { sandboxes: 1 } } });
    await test.server.store.sandboxes.transition("sbx_uses_image", ["running"], "destroyed", { at: now + 1 });
    expect((await test.api.call("DELETE", path("alice/sample:1"))).status).toBe(204);
    expect((await test.api.call("GET", path("alice/sample:1"))).status).toBe(404);
    expect(await readdir(join(storageRoot, "layers"))).toEqual([]);
    expect(await test.server.store.images.listLayers()).toEqual([]);
  });

  it("streams a running build's log with follow and ends it when the build ends", async () => {
    await importArchive(test.api, "alice/sample:1", await ociArchive());
    await test.api.call("POST", "/v1/images", {
      name: "alice/slow:1",
      dockerfile: "FROM alice/sample:1\nRUN hold\n",
    });
    while (runner.holding === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const response = await fetch(`${test.url}${path("alice/slow:1")}/log?follow=true`, {
      headers: { authorization: `Bearer ${test.adminKey}` },
    });
    expect(response.status).toBe(200);
    const text = response.text();
    runner.release();
    const log = await text;
    expect(log).toContain("Step 2/2 : RUN hold");
    expect(log).toContain("ran: /bin/sh -c hold");
    expect(log).toMatch(/image alice\/slow:1 ready: sha256:/);
  });

  it("holds a user to a few builds at once (429), and a rebuild keeps the old digest a sandbox still uses", async () => {
    await importArchive(test.api, "alice/sample:1", await ociArchive());
    // Different steps: two builds of the same step would share one run (the second waits for its layer).
    for (const name of ["alice/a:1", "alice/b:1"]) {
      const started = await test.api.call("POST", "/v1/images", {
        name,
        dockerfile: `FROM alice/sample:1\nRUN hold ${name}\n`,
      });
      expect(started.status).toBe(202);
    }
    while (runner.holding < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    const third = await test.api.call("POST", "/v1/images", {
      name: "alice/c:1",
      dockerfile: "FROM alice/sample:1\n",
    });
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ error: { code: "limit_exceeded", details: { running: 2, max: 2 } } });
    const again = await test.api.call("POST", "/v1/images", {
      name: "alice/a:1",
      dockerfile: "FROM alice/sample:1\n",
    });
    expect(again.body).toMatchObject({ error: { code: "conflict" } });
    runner.release();
    const first = await settled(test.api, "alice/a:1");
    expect(first.state).toBe("ready");
    expect((await settled(test.api, "alice/b:1")).state).toBe("ready");

    const admin = await test.server.store.users.getByName("admin");
    const now = Date.now();
    await test.server.store.sandboxes.insert({
      id: "sbx_old_digest",
      userId: admin?.id ?? "",
      state: "running",
      driver: "namespace",
      cpu: 1,
      memoryMb: 256,
      diskMb: 1024,
      pidsMax: 64,
      network: "none",
      egressPolicy: null,
      env: {},
      metadata: {},
      timeoutMs: 60_000,
      idleTimeoutMs: 60_000,
      createdAt: now,
      expiresAt: now + 60_000,
      image: first.digest,
    });
    await test.api.call("POST", "/v1/images", {
      name: "alice/a:1",
      dockerfile: "FROM alice/sample:1\nRUN changed\n",
    });
    const rebuilt = await settled(test.api, "alice/a:1");
    expect(rebuilt.state).toBe("ready");
    expect(rebuilt.digest).not.toBe(first.digest);
    const kept = await test.api.call<ImageBody>("GET", path(`alice/a:1@${first.digest}`));
    expect(kept.body).toMatchObject({ state: "ready", digest: first.digest, layers: first.layers });
    for (const id of first.layers) expect((await lstat(layerDir(id))).isDirectory()).toBe(true);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "registers a sandbox's upper dir as a snapshot image on its parent's layers, whiteouts kept (skipped unless root: mknod)",
    async () => {
      const sample = await importArchive(test.api, "alice/sample:1", await ociArchive());
      const upper = await mkdtemp(join(tmpdir(), "polydev-upper-"));
      try {
        await mkdir(join(upper, "etc"));
        await writeFile(join(upper, "etc", "snap"), "from the sandbox\n");
        await execFileAsync("mknod", [join(upper, "etc", "keep"), "c", "0", "0"]);
        const adminId = (await test.server.store.users.getByName("admin"))?.id ?? "";
        const images = test.server.images;
        if (!images) throw new Error("no image store");
        const snapshot = await images.registerSnapshot(adminId, "alice/snap:1", {
          parentDigest: sample.body.digest ?? "",
          upperDir: upper,
        });
        expect(snapshot).toMatchObject({ state: "ready", source: "snapshot", config: sample.body.config });
        expect(snapshot.layers.slice(0, 1)).toEqual(sample.body.layers);
        const top = layerDir(snapshot.layers[1] ?? "");
        expect(await readFile(join(top, "etc", "snap"), "utf8")).toBe("from the sandbox\n");
        const whiteout = await lstat(join(top, "etc", "keep"));
        expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true);
        await expect(
          images.registerSnapshot(adminId, "alice/snap:2", { parentDigest: "sha256:gone", upperDir: upper }),
        ).rejects.toMatchObject({ code: "conflict" });
        await test.api.call("POST", "/v1/images", {
          name: "alice/on-snap:1",
          dockerfile: "FROM alice/snap:1\n",
        });
        expect(await settled(test.api, "alice/on-snap:1")).toMatchObject({
          state: "ready",
          layers: snapshot.layers,
        });
      } finally {
        await rm(upper, { recursive: true, force: true });
      }
    },
  );

  it("a restart fails builds a crash interrupted and removes partial layer directories", async () => {
    const sample = await importArchive(test.api, "alice/sample:1", await ociArchive());
    // What a crash mid-build leaves: a record in building and a layer directory without its record.
    const admin = await test.server.store.users.getByName("admin");
    await test.server.store.images.insert({
      id: "img_cut",
      ownerId: admin?.id ?? "",
      name: "alice/cut:1",
      digest: null,
      state: "building",
      layers: [],
      config: { env: {} },
      sizeBytes: 0,
      source: "dockerfile",
      buildLog: "Step 1/2 : FROM alice/sample:1\n",
      error: null,
      createdAt: Date.now(),
    });
    await mkdir(join(storageRoot, "layers", "f".repeat(64), "usr"), { recursive: true });
    await test.restart();
    const image = await settled(test.api, "alice/cut:1");
    expect(image).toMatchObject({ state: "failed", error: "interrupted by a restart" });
    expect(image.log).toContain("interrupted by a restart");
    expect(await readdir(join(storageRoot, "layers"))).toEqual(sample.body.layers);
  });

  it.skipIf(registryUnavailable !== null)(
    `pulls from Debian's docker-registry on loopback${registryUnavailable ? ` (skipped: ${registryUnavailable})` : ""}`,
    async () => {
      const { blobs, manifest } = await sampleImage();
      const layoutDir = await mkdtemp(join(tmpdir(), "polydev-layout-"));
      try {
        const layout = join(layoutDir, "layout");
        await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
        await writeFile(join(layout, "oci-layout"), json({ imageLayoutVersion: "1.0.0" }));
        await writeFile(
          join(layout, "index.json"),
          json({
            schemaVersion: 2,
            manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: sha(manifest), size: manifest.length }],
          }),
        );
        for (const blob of blobs) await writeFile(join(layout, "blobs", "sha256", sha(blob).slice(7)), blob);
        await pushOciLayout(layout, `${registry?.host}/team/sample:1`);
      } finally {
        await rm(layoutDir, { recursive: true, force: true });
      }
      const started = await test.api.call<ImageBody>("POST", "/v1/images", {
        name: "alice/pulled:1",
        pull: `${registry?.host}/team/sample:1`,
      });
      expect(started.status).toBe(202);
      const pulled = await settled(test.api, "alice/pulled:1");
      expect(pulled).toMatchObject({ state: "ready", config: { workdir: "/work", user: "user" } });
      expect(pulled.log).toContain(`pulling ${registry?.host}/team/sample:1`);
      expect(await treeOf(layerDir(pulled.layers[0] ?? ""))).toMatchObject({
        "etc/keep": "f 644 0:0",
        "etc/new": "f 644 0:0",
        "home/user/.profile": "f 644 1000:1000",
      });
      const missing = await test.api.call<ImageBody>("POST", "/v1/images", {
        name: "alice/missing:1",
        pull: `${registry?.host}/team/nothing:1`,
      });
      expect(missing.status).toBe(202);
      const failed = await settled(test.api, "alice/missing:1");
      expect(failed.state).toBe("failed");
      // The same registry by another name the operator did not list: loopback, so refused.
      const unlisted = `localhost:${registry?.host.split(":")[1]}/team/sample:1`;
      await test.api.call("POST", "/v1/images", { name: "alice/forged:1", pull: unlisted });
      const forged = await settled(test.api, "alice/forged:1");
      expect(forged.state).toBe("failed");
      expect(forged.error).toMatch(/pulls may not connect to localhost .*loopback/);
      const badRef = await test.api.call("POST", "/v1/images", { name: "alice/bad:1", pull: "UPPER CASE::" });
      expect(badRef.status).toBe(400);
    },
    120_000,
  );
});

describe("the base image", () => {
  it("registers polydev/base from the built root file system as a system image every user can build on but not delete", async () => {
    const rootfsParent = await mkdtemp(join(tmpdir(), "polydev-base-"));
    const rootfs = join(rootfsParent, "rootfs");
    await mkdir(join(rootfs, "etc"), { recursive: true });
    await mkdir(join(rootfs, "home", "user"), { recursive: true });
    await writeFile(join(rootfs, "etc", "os-release"), "ID=debian\n");
    await chown(join(rootfs, "home", "user"), 1000, 1000);
    let builds = 0;
    let storageRoot = "";
    const test = await startTestServer(
      // No default image: the server would register it at start, before the test asks.
      { images: { defaultImage: "" } },
      {
        images: ({ dataDir }) => {
          const storage = new PlainImageStorage(join(dataDir, "storage"));
          storageRoot = storage.root;
          return {
            storage,
            buildBase: async (onProgress) => {
              builds += 1;
              onProgress("debootstrap: unpacking");
              return rootfs;
            },
          };
        },
      },
    );
    try {
      const images = test.server.images;
      if (!images) throw new Error("the server has no image store");
      const progress: string[] = [];
      const [first, second] = await Promise.all([
        images.ensureBaseImage((line) => progress.push(line)),
        images.ensureBaseImage(),
      ]);
      expect(builds).toBe(1);
      expect(progress).toEqual(["debootstrap: unpacking"]);
      expect(second.id).toBe(first.id);
      expect(first).toMatchObject({ name: "polydev/base", ownerId: null, state: "ready", source: "base" });
      expect(await images.ensureBaseImage()).toMatchObject({ id: first.id, digest: first.digest });
      expect(builds).toBe(1);
      const layer = join(storageRoot, "layers", first.layers[0] ?? "");
      expect(await readFile(join(layer, "etc", "os-release"), "utf8")).toBe("ID=debian\n");
      expect((await lstat(join(layer, "home", "user"))).uid).toBe(1000);

      const bob = await createUser(test.api, "bob");
      const listed = await bob.call<{ images: ImageBody[] }>("GET", "/v1/images");
      expect(listed.body.images).toMatchObject([{ name: "polydev/base", system: true, state: "ready" }]);
      const denied = await bob.call("DELETE", path("polydev/base"));
      expect(denied.status).toBe(403);
      const built = await bob.call("POST", "/v1/images", {
        name: "bob/tools:1",
        dockerfile: "FROM polydev/base\nENV EDITOR=vi\n",
      });
      expect(built.status).toBe(202);
      expect(await settled(bob, "bob/tools:1")).toMatchObject({ state: "ready", layers: first.layers });
    } finally {
      await test.close();
      await rm(rootfsParent, { recursive: true, force: true });
    }
  });
});

const overlayUnavailable = overlayRunStepUnavailable();
describe.skipIf(overlayUnavailable !== null)(
  `RUN steps on real overlay mounts of the layers${overlayUnavailable ? ` (skipped: ${overlayUnavailable})` : ""}`,
  () => {
    /** The host's dash, rm and cat with the libc they need: an image with a working shell. */
    async function shellEntries() {
      const entries = [];
      for (const [inside, host] of [
        ["bin/sh", "/bin/dash"],
        ["bin/rm", "/bin/rm"],
        ["bin/cat", "/bin/cat"],
        ["lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"],
        ["lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"],
      ] as const) {
        entries.push(file(inside, await readFile(host), 0o755));
      }
      return [dir("lib/"), dir("lib/x86_64-linux-gnu/"), dir("lib64/"), ...entries];
    }

    it("runs each step on the layers below it; a deletion is an overlay whiteout in its layer and stays deleted after", async () => {
      const test = await startTestServer(
        {},
        {
          images: ({ dataDir }) => {
            const storage = new PlainImageStorage(join(dataDir, "storage"));
            return { storage, runStep: new OverlayRunStep(storage).run };
          },
        },
      );
      try {
        const imported = await importArchive(
          test.api,
          "alice/shell:1",
          await ociArchive(await shellEntries()),
        );
        expect(imported.status, JSON.stringify(imported.body)).toBe(201);
        const dockerfile = [
          "FROM alice/shell:1",
          "ENV PATH=/bin",
          "WORKDIR /work",
          "RUN echo built > /etc/built && rm /etc/keep && echo here > here",
          'RUN cat /etc/built && test ! -e /etc/keep && test -e /work/here && echo "keep is gone"',
        ].join("\n");
        await test.api.call("POST", "/v1/images", { name: "alice/steps:1", dockerfile });
        const built = await settled(test.api, "alice/steps:1");
        expect(built.state, built.log).toBe("ready");
        expect(built.log).toContain("built\nkeep is gone\n");
        const storage = join(test.dataDir, "storage", "layers");
        const first = join(storage, built.layers[1] ?? "");
        const whiteout = await lstat(join(first, "etc", "keep"));
        expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true);
        expect(await readFile(join(first, "etc", "built"), "utf8")).toBe("built\n");
        expect(await readFile(join(first, "work", "here"), "utf8")).toBe("here\n");
        expect(await readdir(join(test.dataDir, "storage", "steps"))).toEqual([]);

        const failing = await test.api.call("POST", "/v1/images", {
          name: "alice/fails:1",
          dockerfile: "FROM alice/steps:1\nRUN cat /etc/keep\n",
        });
        expect(failing.status).toBe(202);
        const failed = await settled(test.api, "alice/fails:1");
        expect(failed.state).toBe("failed");
        expect(failed.log).toMatch(/cat: \/etc\/keep: No such file or directory/);
        expect(failed.error).toMatch(
          /step 2\/2 \(line 2\) failed: RUN cat \/etc\/keep: the command exited with code 1/,
        );
      } finally {
        await test.close();
      }
    });
  },
);
