import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  chmod,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import { isPolydevError } from "@polydev/core";
import { extract, type Headers, pack } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BlobStore } from "./blob-store.js";
import { commitLayer, LAYER_COMMIT_MEDIA_TYPE } from "./layer-commit.js";
import { assembleRootfs } from "./rootfs.js";

const LIMITS = { maxBytes: 10 * 1024 * 1024, maxEntries: 1000 };
const isRoot = process.getuid?.() === 0;
const hasGetfattr = existsSync("/usr/bin/getfattr");
/** Device nodes and foreign owners need root; without it these tests skip and say so. */
const NEEDS_ROOT = isRoot ? "" : " (skipped: needs root to make device nodes and chown)";

let work: string;
let store: BlobStore;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "polydev-commit-"));
  store = new BlobStore(join(work, "store"));
  await store.init();
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

function tarOf(entries: readonly { header: Headers; content?: string }[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const archive = pack();
    const chunks: Buffer[] = [];
    archive.on("data", (chunk: Buffer) => chunks.push(chunk));
    archive.on("end", () => resolve(Buffer.concat(chunks)));
    archive.on("error", reject);
    for (const { header, content } of entries) archive.entry(header, content ?? "");
    archive.finalize();
  });
}

/** The committed layer's entries, read back with tar-stream. */
async function entriesOf(digest: string): Promise<Headers[]> {
  const tar = gunzipSync(await store.read(digest, 64 * 1024 * 1024));
  const headers: Headers[] = [];
  await new Promise<void>((resolve, reject) => {
    const parser = extract();
    parser.on("entry", (header, stream, next) => {
      headers.push(header);
      stream.on("end", () => next());
      stream.resume();
    });
    parser.on("finish", () => resolve());
    parser.on("error", reject);
    parser.end(tar);
  });
  return headers;
}

/** A lower layer (the image) put in the store: etc/gone, keep/, opaque/{old,sub/deep}. */
async function lowerLayer(): Promise<{ digest: string; mediaType: string; size: number }> {
  const tar = await tarOf([
    { header: { name: "etc/", type: "directory", mode: 0o755 } },
    { header: { name: "etc/gone", type: "file", mode: 0o644 }, content: "deleted later" },
    { header: { name: "etc/kept", type: "file", mode: 0o644 }, content: "lower kept" },
    { header: { name: "etc/changed", type: "file", mode: 0o644 }, content: "lower version" },
    { header: { name: "opaque/", type: "directory", mode: 0o755 } },
    { header: { name: "opaque/old", type: "file", mode: 0o644 }, content: "hidden by opaque" },
    { header: { name: "opaque/sub/", type: "directory", mode: 0o755 } },
    { header: { name: "opaque/sub/deep", type: "file", mode: 0o644 }, content: "hidden too" },
  ]);
  const put = await store.put(Readable.from([tar]), { maxBytes: 1 << 20 });
  return { digest: put.digest, mediaType: "application/vnd.oci.image.layer.v1.tar", size: put.size };
}

/** An upper dir: a changed file, a new dir, a symlink, a hard link, a setuid file, a whiteout. */
async function upperDir(): Promise<string> {
  const upper = join(work, "upper");
  await mkdir(join(upper, "etc"), { recursive: true });
  await writeFile(join(upper, "etc", "changed"), "upper version");
  await mkdir(join(upper, "bin"));
  await writeFile(join(upper, "bin", "tool"), "#!/bin/sh\necho hi\n");
  await chmod(join(upper, "bin", "tool"), 0o4755);
  await link(join(upper, "bin", "tool"), join(upper, "bin", "tool-alias"));
  await symlink("../etc/changed", join(upper, "bin", "config"));
  await mkdir(join(upper, "opaque"));
  await writeFile(join(upper, "opaque", "new"), "only this");
  if (isRoot) execFileSync("/usr/bin/mknod", [join(upper, "etc", "gone"), "c", "0", "0"]);
  return upper;
}

async function tree(root: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(root, prefix))).sort()) {
    const path = join(root, prefix, name);
    const stats = await lstat(path);
    const rel = prefix ? `${prefix}/${name}` : name;
    if (stats.isDirectory()) {
      out.push(`${rel}/`);
      out.push(...(await tree(root, rel)));
    } else if (stats.isSymbolicLink()) out.push(`${rel} -> ${await readlink(path)}`);
    else out.push(`${rel} ${(await readFile(path, "utf8")).length}b ${(stats.mode & 0o7777).toString(8)}`);
  }
  return out;
}

const opaqueDirs =
  (...dirs: string[]) =>
  async (path: string) =>
    dirs.some((dir) => path.endsWith(`/${dir}`));

describe("commitLayer", () => {
  it.skipIf(!isRoot)(
    `round trip: whiteout, opaque dir, symlink, hard link and setuid survive assembleRootfs${NEEDS_ROOT}`,
    async () => {
      const lower = await lowerLayer();
      const upper = await upperDir();
      const result = await commitLayer(upper, store, { ...LIMITS, isOpaque: opaqueDirs("opaque") });
      expect(result.mediaType).toBe(LAYER_COMMIT_MEDIA_TYPE);
      expect(await store.has(result.digest)).toBe(true);
      expect(result.whiteouts).toBe(2);

      const rootfs = join(work, "rootfs");
      await assembleRootfs(
        store,
        [lower, { digest: result.digest, mediaType: result.mediaType, size: result.size }],
        rootfs,
        {
          maxBytes: 1 << 20,
          maxEntries: 1000,
        },
      );
      expect(await tree(rootfs)).toEqual([
        "bin/",
        "bin/config -> ../etc/changed",
        "bin/tool 18b 4755",
        "bin/tool-alias 18b 4755",
        "etc/",
        "etc/changed 13b 644",
        "etc/kept 10b 644",
        "opaque/",
        "opaque/new 9b 644",
      ]);
      const tool = await stat(join(rootfs, "bin", "tool"));
      const alias = await stat(join(rootfs, "bin", "tool-alias"));
      expect(alias.ino).toBe(tool.ino);
      const headers = await entriesOf(result.digest);
      expect(headers.find((h) => h.name === "bin/tool-alias")).toMatchObject({
        type: "link",
        linkname: "bin/tool",
      });
      expect(headers.find((h) => h.name === "bin/config")).toMatchObject({
        type: "symlink",
        linkname: "../etc/changed",
      });
    },
  );

  it("diffId is the sha256 of the uncompressed tar, digest that of the gzip blob", async () => {
    const upper = await upperDir();
    const result = await commitLayer(upper, store, LIMITS);
    const blob = await store.read(result.digest, 1 << 20);
    const { createHash } = await import("node:crypto");
    expect(result.digest).toBe(`sha256:${createHash("sha256").update(blob).digest("hex")}`);
    expect(result.diffId).toBe(`sha256:${createHash("sha256").update(gunzipSync(blob)).digest("hex")}`);
    expect(result.size).toBe(blob.length);
  });

  it("is deterministic: the same upper committed twice (and re-created later) gives the same digest", async () => {
    const upper = await upperDir();
    const first = await commitLayer(upper, store, LIMITS);
    // Touch every timestamp: mtimes, atimes and ctimes must not reach the layer.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await writeFile(join(upper, "etc", "changed"), "upper version");
    await readFile(join(upper, "bin", "tool"));
    const second = await commitLayer(upper, store, LIMITS);
    expect(second.digest).toBe(first.digest);
    expect(second.diffId).toBe(first.diffId);
    const headers = await entriesOf(first.digest);
    expect(headers.map((h) => h.name)).toEqual([...headers.map((h) => h.name)].sort());
    for (const header of headers) expect(header.mtime?.getTime()).toBe(0);
    // PAX only when needed: no PaxHeader record for short names and small ids.
    const tar = gunzipSync(await store.read(first.digest, 1 << 20));
    expect(tar.includes(Buffer.from("PaxHeader"))).toBe(false);
  });

  it("uses a PAX record for a name longer than ustar can hold", async () => {
    const upper = join(work, "upper");
    const long = "d".repeat(120);
    await mkdir(join(upper, long), { recursive: true });
    await writeFile(join(upper, long, "f".repeat(120)), "x");
    const result = await commitLayer(upper, store, LIMITS);
    const headers = await entriesOf(result.digest);
    expect(headers.map((h) => h.name)).toEqual([`${long}/`, `${long}/${"f".repeat(120)}`]);
  });

  it("keeps uid/gid from the file system and a mode of 0", async () => {
    const upper = join(work, "upper");
    await mkdir(upper);
    await writeFile(join(upper, "locked"), "x");
    await chmod(join(upper, "locked"), 0);
    if (isRoot) execFileSync("/usr/bin/chown", ["1234:5678", join(upper, "locked")]);
    const headers = await entriesOf((await commitLayer(upper, store, LIMITS)).digest);
    expect(headers[0]).toMatchObject({ name: "locked", mode: 0 });
    if (isRoot) expect(headers[0]).toMatchObject({ uid: 1234, gid: 5678 });
  });

  it("stores a symlink to /etc as a link and never reads through it", async () => {
    const outside = join(work, "outside");
    await mkdir(outside);
    await writeFile(join(outside, "secret"), "never in a layer");
    const upper = join(work, "upper");
    await mkdir(upper);
    await symlink("/etc", join(upper, "etc-link"));
    await symlink(outside, join(upper, "out"));
    await symlink(join(outside, "secret"), join(upper, "secret-link"));
    const result = await commitLayer(upper, store, LIMITS);
    const headers = await entriesOf(result.digest);
    expect(headers.map((h) => [h.name, h.type, h.linkname])).toEqual([
      ["etc-link", "symlink", "/etc"],
      ["out", "symlink", outside],
      ["secret-link", "symlink", join(outside, "secret")],
    ]);
    const tar = gunzipSync(await store.read(result.digest, 1 << 20));
    expect(tar.includes(Buffer.from("never in a layer"))).toBe(false);
    expect(tar.includes(Buffer.from("passwd"))).toBe(false);
  });

  it.skipIf(!isRoot)(
    `skips and counts FIFOs, sockets and non-0:0 devices; .wh. names are not stored${NEEDS_ROOT}`,
    async () => {
      const upper = join(work, "upper");
      await mkdir(upper);
      execFileSync("/usr/bin/mknod", [join(upper, "fifo"), "p"]);
      execFileSync("/usr/bin/mknod", [join(upper, "null"), "c", "1", "3"]);
      await writeFile(join(upper, ".wh.sneaky"), "");
      await writeFile(join(upper, "plain"), "x");
      const result = await commitLayer(upper, store, LIMITS);
      expect(result.skippedSpecialFiles).toBe(2);
      expect(result.skippedReservedNames).toBe(1);
      expect((await entriesOf(result.digest)).map((h) => h.name)).toEqual(["plain"]);
    },
  );

  it("refuses more entries than maxEntries with payload_too_large", async () => {
    const upper = join(work, "upper");
    await mkdir(upper);
    for (let i = 0; i < 5; i++) await writeFile(join(upper, `f${i}`), "x");
    await expect(commitLayer(upper, store, { maxBytes: 1 << 20, maxEntries: 4 })).rejects.toSatisfy(
      (error: unknown) => isPolydevError(error) && error.code === "payload_too_large",
    );
    expect(await commitLayer(upper, store, { maxBytes: 1 << 20, maxEntries: 5 })).toMatchObject({
      entries: 5,
    });
  });

  it("refuses more file bytes than maxBytes with payload_too_large, leaving nothing in the store", async () => {
    const upper = join(work, "upper");
    await mkdir(upper);
    await writeFile(join(upper, "big"), Buffer.alloc(4096, 1));
    await expect(commitLayer(upper, store, { maxBytes: 4000, maxEntries: 10 })).rejects.toSatisfy(
      (error: unknown) => isPolydevError(error) && error.code === "payload_too_large",
    );
    expect(await store.list()).toEqual([]);
    expect(await readdir(store.directory)).toEqual([]);
  });

  it("refuses file bytes over maxBytes during the walk, before reading any file", async () => {
    const upper = join(work, "upper");
    await mkdir(join(upper, "a"), { recursive: true });
    await mkdir(join(upper, "z"));
    await writeFile(join(upper, "a", "big"), Buffer.alloc(8192, 1));
    const looked: string[] = [];
    const isOpaque = async (path: string) => {
      looked.push(path.slice(upper.length));
      return false;
    };
    await expect(commitLayer(upper, store, { maxBytes: 4096, maxEntries: 10, isOpaque })).rejects.toSatisfy(
      (error: unknown) => isPolydevError(error) && error.code === "payload_too_large",
    );
    // The walk stopped at a/big: z was never reached, so no content was read either.
    expect(looked).toEqual(["/a"]);
  });

  it("refuses a tar larger than maxBytes (headers count) with payload_too_large", async () => {
    const upper = join(work, "upper");
    await mkdir(upper);
    for (let i = 0; i < 20; i++) await writeFile(join(upper, `f${i}`), "x");
    // 20 bytes of content, but 20 headers of 512 bytes and their padding make the tar ~21 KiB.
    await expect(commitLayer(upper, store, { maxBytes: 4096, maxEntries: 100 })).rejects.toSatisfy(
      (error: unknown) => isPolydevError(error) && error.code === "payload_too_large",
    );
    expect(await readdir(store.directory)).toEqual([]);
  });

  it("honours an aborted signal", async () => {
    const upper = await upperDir();
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await expect(commitLayer(upper, store, { ...LIMITS, signal: controller.signal })).rejects.toThrow("stop");
  });

  it.skipIf(!hasGetfattr)(
    "reads trusted.overlay.opaque with getfattr (skipped: /usr/bin/getfattr is not installed here)",
    async () => {
      const upper = join(work, "upper");
      await mkdir(join(upper, "opaque"), { recursive: true });
      await mkdir(join(upper, "plain"));
      execFileSync("/usr/bin/python3", [
        "-c",
        "import os,sys; os.setxattr(sys.argv[1], 'trusted.overlay.opaque', b'y')",
        join(upper, "opaque"),
      ]);
      const result = await commitLayer(upper, store, LIMITS);
      expect(result.opaqueCheck).toBe("getfattr");
      expect((await entriesOf(result.digest)).map((h) => h.name)).toEqual([
        "opaque/",
        "opaque/.wh..wh..opq",
        "plain/",
      ]);
    },
  );

  it.skipIf(hasGetfattr)(
    `without getfattr every directory is taken as not opaque, and the result says so${hasGetfattr ? " (skipped: getfattr is installed here, so the test above reads real xattrs)" : ""}`,
    async () => {
      const upper = join(work, "upper");
      await mkdir(join(upper, "dir"), { recursive: true });
      const result = await commitLayer(upper, store, LIMITS);
      expect(result.opaqueCheck).toBe("unavailable");
      expect((await entriesOf(result.digest)).map((h) => h.name)).toEqual(["dir/"]);
    },
  );

  describe("a file changed between the walk and its read (the isOpaque hook of a later directory swaps it)", () => {
    async function swapped(change: (file: string) => Promise<void>) {
      const outside = join(work, "outside");
      await mkdir(outside);
      await writeFile(join(outside, "secret"), "SECRET");
      const upper = join(work, "upper");
      await mkdir(join(upper, "a"), { recursive: true });
      await mkdir(join(upper, "z"));
      await writeFile(join(upper, "a", "file"), "benign");
      const isOpaque = async (path: string) => {
        if (path.endsWith("/z")) await change(join(upper, "a", "file"));
        return false;
      };
      const outcome = commitLayer(upper, store, { ...LIMITS, isOpaque });
      await expect(outcome).rejects.toSatisfy(
        (error: unknown) => isPolydevError(error) && error.code === "conflict",
      );
      expect(await readdir(store.directory)).toEqual([]);
      return outside;
    }

    it("a symlink put in its place is not followed", async () => {
      await swapped(async (file) => {
        await rm(file);
        await symlink(join(work, "outside", "secret"), file);
      });
    });

    it("another file of the same size renamed over it is not read (identity check)", async () => {
      await swapped(async (file) => {
        await writeFile(`${file}.new`, "SECRET");
        await rename(`${file}.new`, file);
      });
    });

    it("a file rewritten in place with the same size is refused (identity check)", async () => {
      await swapped(async (file) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        await writeFile(file, "SECRET");
      });
    });

    it("a file that shrank is refused", async () => {
      await swapped(async (file) => {
        await writeFile(file, "b");
      });
    });
  });

  it.skipIf(!isRoot)(`writes a uid past ustar's 7 octal digits as a PAX record${NEEDS_ROOT}`, async () => {
    const upper = join(work, "upper");
    await mkdir(upper);
    await writeFile(join(upper, "high"), "x");
    execFileSync("/usr/bin/chown", ["3000000:3000001", join(upper, "high")]);
    const tar = gunzipSync(await store.read((await commitLayer(upper, store, LIMITS)).digest, 1 << 20));
    expect(tar.includes(Buffer.from(" uid=3000000\n"))).toBe(true);
    expect(tar.includes(Buffer.from(" gid=3000001\n"))).toBe(true);
  });
});
