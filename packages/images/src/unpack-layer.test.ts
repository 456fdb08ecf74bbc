import { execFileSync } from "node:child_process";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { isPolydevError } from "@polydev/core";
import { type Headers, pack } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type UnpackLayerOptions, unpackLayer } from "./unpack-layer.js";

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

const file = (name: string, content: string, extra: Partial<Headers> = {}): Entry => ({
  header: { name, type: "file", mode: 0o644, ...extra },
  content,
});
const directory = (name: string, mode = 0o755): Entry => ({ header: { name, type: "directory", mode } });
const symlinkEntry = (name: string, target: string): Entry => ({
  header: { name, type: "symlink", linkname: target },
});
const hardLink = (name: string, target: string): Entry => ({
  header: { name, type: "link", linkname: target },
});

const limits: UnpackLayerOptions = { maxBytes: 64 * 1024 * 1024, maxEntries: 10_000 };

let base: string;
let target: string;
/** A sibling of the target: every attack aims here, and it must stay as the test left it. */
let outside: string;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), "polydev-unpack-"));
  target = join(base, "target");
  outside = join(base, "outside");
  await mkdir(target);
  await mkdir(outside);
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

const unpack = (archive: Buffer, options: Partial<UnpackLayerOptions> = {}) =>
  unpackLayer(Readable.from([archive]), target, { ...limits, ...options });

async function expectRefused(promise: Promise<unknown>, code: string, messagePart?: string): Promise<void> {
  const error = await promise.then(
    () => {
      throw new Error("expected the unpack to be refused");
    },
    (caught: unknown) => caught,
  );
  if (!isPolydevError(error)) throw error;
  expect(error.code).toBe(code);
  if (messagePart !== undefined) expect(error.message).toContain(messagePart);
}

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    () => false,
  );

describe("unpackLayer: a normal layer", () => {
  it("unpacks a gzipped layer made by the tar CLI with content, modes, symlinks and hard links intact", async () => {
    const source = join(base, "source");
    await mkdir(join(source, "usr/bin"), { recursive: true });
    await writeFile(join(source, "usr/bin/tool"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
    await writeFile(join(source, "usr/bin/secret"), "private", { mode: 0o640 });
    await writeFile(join(source, "usr/bin/su"), "setuid", { mode: 0o755 });
    execFileSync("chmod", ["4755", join(source, "usr/bin/su")]);
    await symlink("tool", join(source, "usr/bin/alias"));
    execFileSync("ln", [join(source, "usr/bin/tool"), join(source, "usr/bin/tool-again")]);
    await mkdir(join(source, "srv"), { mode: 0o750 });
    execFileSync("chmod", ["750", join(source, "srv")]);
    const tarred = execFileSync(
      "tar",
      ["-C", source, "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", "."],
      {
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    const owners = new Map<string, [number, number]>();

    const result = await unpack(gzipSync(tarred), {
      onOwner: (path, uid, gid) => owners.set(path, [uid, gid]),
    });

    expect(await readFile(join(target, "usr/bin/tool"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect((await stat(join(target, "usr/bin/tool"))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(target, "usr/bin/secret"))).mode & 0o7777).toBe(0o640);
    expect((await stat(join(target, "usr/bin/su"))).mode & 0o7777).toBe(0o4755);
    expect((await stat(join(target, "srv"))).mode & 0o7777).toBe(0o750);
    expect(await readlink(join(target, "usr/bin/alias"))).toBe("tool");
    expect((await stat(join(target, "usr/bin/tool-again"))).ino).toBe(
      (await stat(join(target, "usr/bin/tool"))).ino,
    );
    expect(owners.get("usr/bin/tool")).toEqual([0, 0]);
    expect((await stat(join(target, "usr/bin/tool"))).uid).toBe(process.getuid?.());
    expect(result.bytes).toBe("#!/bin/sh\necho hi\n".length + "private".length + "setuid".length);
    expect(result.whiteouts).toBe(0);
  });

  it("keeps setuid bits, reports ownership as data and never applies extended attributes", async () => {
    const owners: Array<[string, number, number]> = [];
    const archive = await tarOf([
      file("bin/ping", "ping", {
        mode: 0o4755,
        uid: 1234,
        gid: 5678,
        pax: { "SCHILY.xattr.security.capability": "\u0001\u0000\u0000\u0002", "SCHILY.xattr.user.x": "y" },
      }),
    ]);

    const result = await unpack(archive, { onOwner: (path, uid, gid) => owners.push([path, uid, gid]) });

    const stats = await stat(join(target, "bin/ping"));
    expect(stats.mode & 0o7777).toBe(0o4755);
    expect(stats.uid).toBe(process.getuid?.());
    expect(owners).toEqual([["bin/ping", 1234, 5678]]);
    expect(result.ignoredExtendedAttributes).toBe(2);
    const listXattrs = "import os, sys; print(os.listxattr(sys.argv[1]))";
    const xattrs = execFileSync("python3", ["-c", listXattrs, join(target, "bin/ping")], {
      encoding: "utf8",
    });
    expect(xattrs.trim()).toBe("[]");
  });
});

describe("unpackLayer: nothing is written outside the target", () => {
  // Tests plant only these files outside; anything else there, or a changed byte, is an escape.
  const planted: Record<string, string> = { secret: "host secret", victim: "original" };
  afterEach(async () => {
    for (const name of await readdir(outside)) {
      expect(await readFile(join(outside, name), "utf8")).toBe(planted[name]);
    }
  });

  it("refuses '..' components, naming the entry", async () => {
    for (const name of ["../outside/escaped", "a/../../outside/escaped", "./.."]) {
      await expectRefused(unpack(await tarOf([file(name, "x")])), "invalid_request", JSON.stringify(name));
    }
    expect(await readdir(outside)).toEqual([]);
  });

  it("refuses absolute paths, even ones pointing into the target's sibling", async () => {
    const name = join(outside, "escaped");
    await expectRefused(unpack(await tarOf([file(name, "x")])), "invalid_request", JSON.stringify(name));
    expect(await readdir(outside)).toEqual([]);
  });

  it("resolves a symlink planted by an earlier entry inside the target, '..' clamped at its root", async () => {
    const archive = await tarOf([symlinkEntry("planted", "../outside"), file("planted/escaped", "x")]);
    await unpack(archive);
    expect(await readFile(join(target, "outside/escaped"), "utf8")).toBe("x");
    expect(await readdir(outside)).toEqual([]);
    expect(await readlink(join(target, "planted"))).toBe("../outside");
  });

  it("resolves a symlink already in the target with an absolute target under the target", async () => {
    await symlink(outside, join(target, "already"));
    await unpack(await tarOf([file("already/escaped", "x"), directory("already/sub/")]));
    expect(await readFile(join(target, outside, "escaped"), "utf8")).toBe("x");
    expect((await lstat(join(target, outside, "sub"))).isDirectory()).toBe(true);
    expect(await readdir(outside)).toEqual([]);
    expect(await readlink(join(target, "already"))).toBe(outside);
  });

  it("replaces a symlink named like a later file instead of writing through it", async () => {
    await writeFile(join(outside, "victim"), "original");
    const archive = await tarOf([symlinkEntry("link", "../outside/victim"), file("link", "replaced")]);
    await unpack(archive);
    expect(await readFile(join(outside, "victim"), "utf8")).toBe("original");
    expect((await lstat(join(target, "link"))).isFile()).toBe(true);
    expect(await readFile(join(target, "link"), "utf8")).toBe("replaced");
  });

  it("replaces a symlink named like a later directory, so the directory's entries land inside", async () => {
    const archive = await tarOf([symlinkEntry("d", "../outside"), directory("d/"), file("d/x", "x")]);
    await unpack(archive);
    expect((await lstat(join(target, "d"))).isDirectory()).toBe(true);
    expect(await readFile(join(target, "d/x"), "utf8")).toBe("x");
    expect(await readdir(outside)).toEqual([]);
  });

  it("keeps a symlink's target text as is, even one pointing out", async () => {
    await unpack(
      await tarOf([symlinkEntry("etc/passwd-link", "/etc/passwd"), symlinkEntry("up", "../../..")]),
    );
    expect(await readlink(join(target, "etc/passwd-link"))).toBe("/etc/passwd");
    expect(await readlink(join(target, "up"))).toBe("../../..");
  });

  it("refuses hard links to outside, through a symlink, or to what is not unpacked", async () => {
    await writeFile(join(outside, "secret"), "host secret");
    const attacks: Entry[][] = [
      [hardLink("stolen", "../outside/secret")],
      [hardLink("stolen", join(outside, "secret"))],
      [symlinkEntry("door", "../outside"), hardLink("stolen", "door/secret")],
      [hardLink("stolen", "not-yet"), file("not-yet", "x")],
      [symlinkEntry("loop", "loop"), hardLink("stolen", "loop/secret")],
    ];
    for (const entries of attacks) {
      await expectRefused(unpack(await tarOf(entries)), "invalid_request", '"stolen"');
      expect(await exists(join(target, "stolen"))).toBe(false);
    }
    await expectRefused(
      unpack(await tarOf([file("self", "x"), hardLink("self", "./self")])),
      "invalid_request",
      "itself",
    );
    expect((await stat(join(outside, "secret"))).nlink).toBe(1);
  });

  it("resolves a hard link's target through symlinks inside the target only", async () => {
    await writeFile(join(outside, "secret"), "host secret");
    await mkdir(join(target, "outside"));
    await writeFile(join(target, "outside/secret"), "inside");
    await unpack(await tarOf([symlinkEntry("door", "../outside"), hardLink("stolen", "door/secret")]));
    expect((await stat(join(target, "stolen"))).ino).toBe((await stat(join(target, "outside/secret"))).ino);
    expect(await readFile(join(target, "stolen"), "utf8")).toBe("inside");
    expect((await stat(join(outside, "secret"))).nlink).toBe(1);
  });

  it("refuses a hard link to itself reached through a symlinked parent", async () => {
    await mkdir(join(target, "usr/lib"), { recursive: true });
    await symlink("usr/lib", join(target, "lib"));
    await writeFile(join(target, "usr/lib/x"), "x");
    await expectRefused(unpack(await tarOf([hardLink("usr/lib/x", "lib/x")])), "invalid_request", "itself");
    expect(await readFile(join(target, "usr/lib/x"), "utf8")).toBe("x");
  });

  it("creates no device nodes or FIFOs: they are skipped and counted", async () => {
    const archive = await tarOf([
      { header: { name: "dev/null", type: "character-device", mode: 0o666 } },
      { header: { name: "dev/sda", type: "block-device", mode: 0o660 } },
      { header: { name: "run/pipe", type: "fifo", mode: 0o644 } },
      file("ok", "ok"),
    ]);
    const result = await unpack(archive);
    expect(result.skippedSpecialFiles).toBe(3);
    expect(await exists(join(target, "dev/null"))).toBe(false);
    expect(await exists(join(target, "dev/sda"))).toBe(false);
    expect(await exists(join(target, "run/pipe"))).toBe(false);
    expect(await readFile(join(target, "ok"), "utf8")).toBe("ok");
  });
});

describe("unpackLayer: whiteouts", () => {
  it("deletes the named lower entry, file or directory, and keeps the rest", async () => {
    await mkdir(join(target, "etc/gone-dir"), { recursive: true });
    await writeFile(join(target, "etc/gone-dir/x"), "x");
    await writeFile(join(target, "etc/gone"), "x");
    await writeFile(join(target, "etc/kept"), "x");
    const result = await unpack(await tarOf([file("etc/.wh.gone", ""), file("etc/.wh.gone-dir", "")]));
    expect((await readdir(join(target, "etc"))).sort()).toEqual(["kept"]);
    expect(result.whiteouts).toBe(2);
  });

  it("applies an opaque whiteout to the directory's existing contents, not to this layer's", async () => {
    await mkdir(join(target, "opt/old-dir"), { recursive: true });
    await writeFile(join(target, "opt/old-dir/x"), "x");
    await writeFile(join(target, "opt/old"), "x");
    await writeFile(join(target, "kept"), "x");
    const archive = await tarOf([
      directory("opt/"),
      file("opt/before", "b"),
      file("opt/.wh..wh..opq", ""),
      file("opt/after", "a"),
    ]);
    await unpack(archive);
    expect((await readdir(join(target, "opt"))).sort()).toEqual(["after", "before"]);
    expect(await exists(join(target, "kept"))).toBe(true);
  });

  it("never hides what the same layer creates, whichever comes first", async () => {
    await writeFile(join(target, "lower"), "x");
    const archive = await tarOf([file("mine", "m"), file(".wh.mine", ""), file(".wh.lower", "")]);
    await unpack(archive);
    expect(await readdir(target)).toEqual(["mine"]);
  });

  it("refuses '.wh..' tricks and resolves a whiteout's directory inside the target only", async () => {
    await writeFile(join(outside, "victim"), "original");
    await writeFile(join(outside, "other"), "original");
    await writeFile(join(target, "kept"), "x");
    for (const name of [".wh..", ".wh...", "sub/.wh.."]) {
      await expectRefused(unpack(await tarOf([file(name, "")])), "invalid_request", JSON.stringify(name));
    }
    await symlink("../outside", join(target, "door"));
    await mkdir(join(target, "outside"));
    await writeFile(join(target, "outside/victim"), "inside");
    await writeFile(join(target, "outside/other"), "inside");
    await unpack(await tarOf([file("door/.wh.victim", "")]));
    expect(await readdir(join(target, "outside"))).toEqual(["other"]);
    await unpack(await tarOf([file("door/.wh..wh..opq", "")]));
    expect(await readdir(join(target, "outside"))).toEqual([]);
    // A whiteout naming the symlink itself removes the link, never what it points at.
    await unpack(await tarOf([file(".wh.door", "")]));
    expect(await exists(join(target, "door"))).toBe(false);
    expect((await readdir(outside)).sort()).toEqual(["other", "victim"]);
    expect(await readFile(join(outside, "victim"), "utf8")).toBe("original");
    expect(await exists(join(target, "kept"))).toBe(true);
  });
});

describe("unpackLayer: symlinked parents resolve with the target as the root", () => {
  afterEach(async () => {
    expect(await readdir(outside)).toEqual([]);
  });

  it("writes an upper layer's lib/… and bin/… into usr/ of a merged-/usr base", async () => {
    const mergedUsr = ["bin", "sbin", "lib", "lib64"];
    await unpack(
      await tarOf([
        directory("usr/"),
        ...mergedUsr.map((name) => directory(`usr/${name}/`)),
        ...mergedUsr.map((name) => symlinkEntry(name, `usr/${name}`)),
        file("usr/bin/old", "old"),
      ]),
    );
    const owners: string[] = [];
    await unpack(
      await tarOf([
        directory("lib/x86_64-linux-gnu/", 0o750),
        file("lib/x86_64-linux-gnu/libfoo.so", "elf"),
        file("bin/tool", "tool", { mode: 0o755 }),
        hardLink("sbin/tool-again", "bin/tool"),
        file("lib64/ld.so", "ld"),
        file("bin/mine", "mine"),
        file("usr/bin/.wh.mine", ""),
      ]),
      { onOwner: (path) => owners.push(path) },
    );
    await unpack(await tarOf([file("bin/.wh.old", "")]));

    for (const name of mergedUsr) expect(await readlink(join(target, name))).toBe(`usr/${name}`);
    expect(await readFile(join(target, "usr/lib/x86_64-linux-gnu/libfoo.so"), "utf8")).toBe("elf");
    expect((await stat(join(target, "usr/lib/x86_64-linux-gnu"))).mode & 0o7777).toBe(0o750);
    expect(await readFile(join(target, "usr/bin/tool"), "utf8")).toBe("tool");
    expect(await readFile(join(target, "usr/lib64/ld.so"), "utf8")).toBe("ld");
    expect((await stat(join(target, "usr/sbin/tool-again"))).ino).toBe(
      (await stat(join(target, "usr/bin/tool"))).ino,
    );
    expect(await exists(join(target, "usr/bin/old"))).toBe(false);
    expect(await readFile(join(target, "usr/bin/mine"), "utf8")).toBe("mine");
    expect((await readdir(target)).sort()).toEqual(["bin", "lib", "lib64", "sbin", "usr"]);
    expect(owners).toEqual([
      "usr/lib/x86_64-linux-gnu",
      "usr/lib/x86_64-linux-gnu/libfoo.so",
      "usr/bin/tool",
      "usr/sbin/tool-again",
      "usr/lib64/ld.so",
      "usr/bin/mine",
    ]);
  });

  it("takes an absolute link target under the target: evil -> /etc never reaches the host's /etc", async () => {
    const before = await stat("/etc/passwd");
    const content = await readFile("/etc/passwd", "utf8");
    await unpack(
      await tarOf([
        symlinkEntry("evil", "/etc"),
        file("evil/passwd", "root::0:0::/:/bin/sh\n"),
        symlinkEntry("deep/er/evil", "/etc"),
        file("deep/er/evil/group", "root:x:0:\n"),
      ]),
    );
    expect(await readFile(join(target, "etc/passwd"), "utf8")).toBe("root::0:0::/:/bin/sh\n");
    expect(await readFile(join(target, "etc/group"), "utf8")).toBe("root:x:0:\n");
    expect(await readdir(join(target, "deep/er"))).toEqual(["evil"]);
    expect(await readlink(join(target, "evil"))).toBe("/etc");
    const after = await stat("/etc/passwd");
    expect(await readFile("/etc/passwd", "utf8")).toBe(content);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.ino).toBe(before.ino);
  });

  it("clamps '..' in a link target at the target's root", async () => {
    const name = `polydev-unpack-escape-${process.pid}-${Date.now()}`;
    await unpack(
      await tarOf([
        symlinkEntry("up", "../../../../.."),
        file(`up/tmp/${name}`, "x"),
        file("up/outside/y", "y"),
        symlinkEntry("deep/up", "../../../outside"),
        file("deep/up/z", "z"),
      ]),
    );
    expect(await readFile(join(target, "tmp", name), "utf8")).toBe("x");
    expect(await readFile(join(target, "outside/y"), "utf8")).toBe("y");
    expect(await readFile(join(target, "outside/z"), "utf8")).toBe("z");
    expect(await exists(join("/tmp", name))).toBe(false);
    expect(await exists(join(tmpdir(), name))).toBe(false);
  });

  it("follows a chain of relative and absolute links", async () => {
    await unpack(
      await tarOf([
        directory("real/"),
        symlinkEntry("c1", "c2"),
        symlinkEntry("c2", "/deep/c3"),
        symlinkEntry("deep/c3", "./../nested/../real/"),
        file("c1/file", "chained"),
      ]),
    );
    expect(await readFile(join(target, "real/file"), "utf8")).toBe("chained");
    expect(await exists(join(target, "nested"))).toBe(true);
    expect((await readdir(target)).sort()).toEqual(["c1", "c2", "deep", "nested", "real"]);
  });

  it("refuses a link loop and more than 40 links in one path", async () => {
    await expectRefused(
      unpack(await tarOf([symlinkEntry("a", "b"), symlinkEntry("b", "a"), file("a/x", "x")])),
      "invalid_request",
      "too many levels of symbolic links",
    );
    const chain = (length: number): Entry[] => [
      directory("end/"),
      ...Array.from({ length }, (_, index) =>
        symlinkEntry(`l${index}`, index === length - 1 ? "end" : `l${index + 1}`),
      ),
    ];
    await unpack(await tarOf([...chain(40), file("l0/x", "x")]));
    expect(await readFile(join(target, "end/x"), "utf8")).toBe("x");
    await rm(target, { recursive: true });
    await mkdir(target);
    await expectRefused(
      unpack(await tarOf([...chain(41), file("l0/x", "x")])),
      "invalid_request",
      "too many levels of symbolic links",
    );
    expect(await exists(join(target, "end/x"))).toBe(false);
  });

  it("skips the mode of a directory that a later entry replaced with a symlink", async () => {
    await unpack(await tarOf([directory("d/", 0o750), directory("d/sub/", 0o700), symlinkEntry("d", "x")]));
    expect(await readlink(join(target, "d"))).toBe("x");
    expect(await exists(join(target, "x"))).toBe(false);
  });

  it("still refuses a parent that is a file", async () => {
    await expectRefused(
      unpack(await tarOf([file("f", "f"), symlinkEntry("l", "f"), file("l/x", "x")])),
      "invalid_request",
      "not a directory",
    );
  });
});

describe("unpackLayer: limits", () => {
  it("refuses a 10 MiB gzip bomb against maxBytes of 1 MiB, quickly", async () => {
    const bomb = gzipSync(await tarOf([file("zeros", Buffer.alloc(10 * 1024 * 1024).toString())]));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const started = performance.now();
    await expectRefused(unpack(bomb, { maxBytes: 1024 * 1024 }), "payload_too_large");
    expect(performance.now() - started).toBeLessThan(2000);
    expect((await lstat(join(target, "zeros")).catch(() => null))?.size ?? 0).toBeLessThanOrEqual(
      1024 * 1024,
    );
  });

  it("refuses a bomb of trailing zero blocks, which writes no file", async () => {
    const archive = Buffer.concat([await tarOf([file("a", "a")]), Buffer.alloc(64 * 1024 * 1024)]);
    await expectRefused(
      unpack(gzipSync(archive), { maxBytes: 1024 * 1024, maxEntries: 10 }),
      "payload_too_large",
    );
  });

  it("refuses a PAX record too large to hold in memory before buffering it", async () => {
    const hugeRecord = { "SCHILY.xattr.user.big": "x".repeat(2 * 1024 * 1024) };
    const archive = await tarOf([file("a", "a", { pax: hugeRecord })]);
    await expectRefused(unpack(gzipSync(archive)), "payload_too_large", "pax-header");
    await unpack(await tarOf([file("b", "b", { pax: { "SCHILY.xattr.user.small": "x".repeat(1000) } })]));
    expect(await readFile(join(target, "b"), "utf8")).toBe("b");
  });

  it("refuses more entries than maxEntries", async () => {
    const entries = ["a", "b", "c", "d"].map((name) => file(name, name));
    await expectRefused(unpack(await tarOf(entries), { maxEntries: 3 }), "payload_too_large", "3 entries");
  });

  it("refuses a path longer than maxPathLength", async () => {
    const name = `${"d/".repeat(60)}file`;
    await expectRefused(unpack(await tarOf([file(name, "x")]), { maxPathLength: 100 }), "payload_too_large");
    await unpack(await tarOf([file(name, "x")]));
    expect(await readFile(join(target, name), "utf8")).toBe("x");
  });
});

describe("unpackLayer: bad archives", () => {
  it("refuses an archive cut inside an entry, cut between entries, or with a corrupt header", async () => {
    const archive = await tarOf([file("a", "a".repeat(2000)), file("b", "b")]);
    const cuts = [
      archive.subarray(0, 1200),
      archive.subarray(0, 512 * 5),
      archive.subarray(0, 100),
      Buffer.alloc(0),
    ];
    for (const cut of cuts) {
      await expectRefused(unpack(cut), "invalid_request", "archive");
      await expectRefused(unpack(gzipSync(cut)), "invalid_request", "archive");
    }
    const corrupt = Buffer.from(archive);
    corrupt.write("garbage", 512 * 5 + 148);
    await expectRefused(unpack(corrupt), "invalid_request", "corrupt");
    await expectRefused(unpack(gzipSync(archive).subarray(0, 100)), "invalid_request", "archive");
  });

  it("refuses zstd with a clear error on Node 20", async () => {
    const zstdMagic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
    await expectRefused(unpack(zstdMagic), "unsupported_media_type", "zstd");
  });

  it("stops when the signal aborts, even with the input stalled mid-entry", async () => {
    const archive = await tarOf([file("big", "x".repeat(100_000))]);
    const input = new PassThrough();
    input.write(archive.subarray(0, 4096));
    const controller = new AbortController();
    const unpacking = unpackLayer(input, target, { ...limits, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("stop")), 50);
    await expect(unpacking).rejects.toThrow("stop");
    expect(input.destroyed).toBe(true);
  });
});
