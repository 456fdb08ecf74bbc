import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { FileWatchEvent } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AgentFixture } from "./testing/agent-fixture.js";
import { readAll, readText, startAgentFixture } from "./testing/agent-fixture.js";

const upload = (data: string | Buffer) => Readable.from([Buffer.from(data)]);

/** The namespace driver's init binary, whose `--file` mode is the file helper (built by ensure.sh). */
const INIT_BINARY = fileURLToPath(
  new URL("../../driver-namespace/dist/polydev-exec-server", import.meta.url),
);

// Every case runs twice: through the sh scripts (a launcher without a file helper) and through
// the init binary's file helper, which must behave the same while starting no shell at all.
describe.each([
  { implementation: "the sh scripts", fileHelper: undefined, baseEnv: undefined },
  {
    implementation: "the init binary's file helper",
    fileHelper: [INIT_BINARY, "--file"],
    baseEnv: undefined,
  },
  {
    implementation: "the init binary's file helper without openat2 (as before Linux 5.6)",
    fileHelper: [INIT_BINARY, "--file"],
    baseEnv: { POLYDEV_FILE_OPS_NO_OPENAT2: "1" },
  },
])("files through $implementation", ({ fileHelper, baseEnv }) => {
  let fixture: AgentFixture;
  beforeEach(async () => {
    if (fileHelper !== undefined && !existsSync(INIT_BINARY)) {
      throw new Error(`${INIT_BINARY} is missing: run scripts/ensure.sh to build it`);
    }
    fixture = await startAgentFixture({
      ...(fileHelper === undefined ? {} : { fileHelper }),
      ...(baseEnv === undefined ? {} : { baseEnv }),
    });
  });
  afterEach(async () => {
    const started = fixture.started;
    await fixture.cleanup();
    // With a file helper, no file operation needs anything from the image: only the helper ran.
    if (fileHelper !== undefined) {
      expect(started.filter((argv) => argv[0] !== INIT_BINARY)).toEqual([]);
    }
  });

  describe("files", () => {
    it("writes and reads back bytes exactly, including a large file streamed in chunks", async () => {
      const { files } = fixture.agent;
      expect(await files.write("notes/hello.txt", upload("hello\n"))).toEqual({ sizeBytes: 6 });
      expect(await readText(await files.read("notes/hello.txt"))).toBe("hello\n");
      expect(await readFile(join(fixture.home, "notes/hello.txt"), "utf8")).toBe("hello\n");

      const big = randomBytes(6 * 1024 * 1024);
      const chunks = Array.from({ length: 96 }, (_, i) => big.subarray(i * 65536, (i + 1) * 65536));
      expect(await files.write("big.bin", Readable.from(chunks))).toEqual({ sizeBytes: big.length });
      expect((await readAll(await files.read("big.bin"))).equals(big)).toBe(true);

      expect(await files.write("empty", upload(""))).toEqual({ sizeBytes: 0 });
      expect(await readAll(await files.read("empty"))).toEqual(Buffer.alloc(0));
    });

    it("sets the mode of a written file", async () => {
      await fixture.agent.files.write("run.sh", upload("#!/bin/sh\n"), { mode: 0o750 });
      expect((await stat(join(fixture.home, "run.sh"))).mode & 0o777).toBe(0o750);
      expect((await fixture.agent.files.stat("run.sh")).mode).toBe(0o750);
    });

    it("lists a directory and stats entries as FileEntry", async () => {
      await mkdir(join(fixture.home, "dir/sub"), { recursive: true });
      await writeFile(join(fixture.home, "dir/b.txt"), "four");
      await symlink("b.txt", join(fixture.home, "dir/link"));
      const entries = await fixture.agent.files.list("dir");
      expect(entries.map(({ name, path, type, sizeBytes }) => ({ name, path, type, sizeBytes }))).toEqual([
        { name: "b.txt", path: "dir/b.txt", type: "file", sizeBytes: 4 },
        { name: "link", path: "dir/link", type: "symlink", sizeBytes: 5 },
        { name: "sub", path: "dir/sub", type: "directory", sizeBytes: expect.any(Number) },
      ]);
      const file = await fixture.agent.files.stat("dir/b.txt");
      const onDisk = await stat(join(fixture.home, "dir/b.txt"));
      expect(file).toEqual({
        name: "b.txt",
        path: "dir/b.txt",
        type: "file",
        sizeBytes: 4,
        modifiedAt: Math.round(onDisk.mtimeMs),
        mode: onDisk.mode & 0o7777,
      });
      expect(await fixture.agent.files.stat(".")).toMatchObject({ path: ".", type: "directory" });
    });

    it("makes directories, with or without parents", async () => {
      const { files } = fixture.agent;
      await files.mkdir("a/b/c");
      expect((await stat(join(fixture.home, "a/b/c"))).isDirectory()).toBe(true);
      await files.mkdir("a/b/c");
      await files.mkdir("a/single", { parents: false });
      await expect(files.mkdir("a/single", { parents: false })).rejects.toMatchObject({ code: "conflict" });
      await expect(files.mkdir("x/y", { parents: false })).rejects.toMatchObject({ code: "not_found" });
    });

    it("removes files, empty directories, and whole trees only when asked", async () => {
      const { files } = fixture.agent;
      await files.write("tree/leaf.txt", upload("x"));
      await files.remove("tree/leaf.txt");
      await expect(files.stat("tree/leaf.txt")).rejects.toMatchObject({ code: "not_found" });
      await files.write("tree/leaf.txt", upload("x"));
      await expect(files.remove("tree")).rejects.toMatchObject({ code: "conflict" });
      await files.remove("tree", { recursive: true });
      expect(await readdir(fixture.home)).toEqual([]);
      await expect(files.remove(".", { recursive: true })).rejects.toMatchObject({ code: "invalid_request" });
    });

    it("answers not_found for what does not exist", async () => {
      const { files } = fixture.agent;
      for (const attempt of [
        () => files.read("missing.txt"),
        () => files.stat("missing.txt"),
        () => files.list("missing"),
        () => files.remove("missing.txt"),
      ]) {
        await expect(attempt()).rejects.toMatchObject({ code: "not_found" });
      }
    });

    it("refuses paths that escape the home: ../, absolute, and a symlink out", async () => {
      await symlink("/etc", join(fixture.home, "etc-link"));
      const { files } = fixture.agent;
      const attempts: [string, () => Promise<unknown>][] = [
        ["../x", () => files.read("../x")],
        ["a/../../x", () => files.stat("a/../../x")],
        ["/etc/passwd", () => files.read("/etc/passwd")],
        ["/etc", () => files.list("/etc")],
        ["etc-link/passwd", () => files.read("etc-link/passwd")],
        ["etc-link", () => files.list("etc-link")],
        ["etc-link/evil", () => files.write("etc-link/evil", upload("x"))],
        ["etc-link/x", () => files.mkdir("etc-link/x")],
        ["etc-link/hostname", () => files.remove("etc-link/hostname")],
      ];
      for (const [path, attempt] of attempts) {
        const error = await attempt().then(
          () => undefined,
          (caught: unknown) => caught,
        );
        expect(error, path).toBeInstanceOf(PolydevError);
        expect(error, path).toMatchObject({
          code: "path_outside_home",
          message: expect.stringContaining("must stay under the home"),
        });
      }
      // The link itself lives in the home and may be removed; its target is untouched.
      await files.remove("etc-link");
      expect((await stat("/etc")).isDirectory()).toBe(true);
    });

    it("leaves no file behind when an upload fails midway", async () => {
      await fixture.agent.files.write("kept.txt", upload("old"));
      async function* failing() {
        yield Buffer.alloc(512 * 1024, "n");
        await sleep(100);
        throw new Error("the upload source broke");
      }
      for (const path of ["fresh.txt", "kept.txt"]) {
        await expect(fixture.agent.files.write(path, Readable.from(failing()))).rejects.toThrow(
          "the upload source broke",
        );
      }
      await sleep(200);
      expect((await readdir(fixture.home)).sort()).toEqual(["kept.txt"]);
      expect(await readFile(join(fixture.home, "kept.txt"), "utf8")).toBe("old");
    });

    it("replaces a symlink at the written path rather than writing through it, and keeps an old file's mode", async () => {
      await writeFile(join(fixture.home, "target.txt"), "target");
      await symlink("target.txt", join(fixture.home, "link.txt"));
      await fixture.agent.files.write("link.txt", upload("new"));
      expect((await lstat(join(fixture.home, "link.txt"))).isFile()).toBe(true);
      expect(await readFile(join(fixture.home, "target.txt"), "utf8")).toBe("target");
      await fixture.agent.files.write("script.sh", upload("v1"), { mode: 0o751 });
      await fixture.agent.files.write("script.sh", upload("v2"));
      expect((await stat(join(fixture.home, "script.sh"))).mode & 0o7777).toBe(0o751);
      // A symlink to a directory counts as the directory: nothing is written into or over it.
      await mkdir(join(fixture.home, "dir"));
      await symlink("dir", join(fixture.home, "dir-link"));
      await expect(fixture.agent.files.write("dir-link", upload("x"))).rejects.toMatchObject({
        code: "invalid_request",
      });
      expect(await readdir(join(fixture.home, "dir"))).toEqual([]);
    });

    it("renames files, directories and symlinks themselves, and refuses to leave the home", async () => {
      const { files } = fixture.agent;
      await files.write("a/one.txt", upload("1"));
      await files.rename("a/one.txt", "a/two.txt");
      expect(await readdir(join(fixture.home, "a"))).toEqual(["two.txt"]);
      await files.mkdir("b");
      await files.rename("a", "b/a");
      expect(await readFile(join(fixture.home, "b/a/two.txt"), "utf8")).toBe("1");
      await symlink("b/a/two.txt", join(fixture.home, "link"));
      await files.rename("link", "moved-link");
      expect(await readlink(join(fixture.home, "moved-link"))).toBe("b/a/two.txt");
      expect(await readFile(join(fixture.home, "b/a/two.txt"), "utf8")).toBe("1");
      await files.write("full/x", upload("x"));
      await expect(files.rename("b", "full")).rejects.toMatchObject({ code: "conflict" });
      await expect(files.rename("full/x", "b")).rejects.toMatchObject({ code: "conflict" });
      await expect(files.rename("b", "full/x")).rejects.toMatchObject({ code: "conflict" });
      await expect(files.rename("missing", "elsewhere")).rejects.toMatchObject({ code: "not_found" });
      await expect(files.rename("b", "no/such/dir/b")).rejects.toMatchObject({ code: "not_found" });
      await symlink("/tmp", join(fixture.home, "tmp-link"));
      await expect(files.rename("b", "tmp-link/b")).rejects.toMatchObject({ code: "path_outside_home" });
      await expect(files.rename("tmp-link/x", "x")).rejects.toMatchObject({ code: "path_outside_home" });
      await expect(files.rename(".", "x")).rejects.toMatchObject({ code: "invalid_request" });
      expect((await stat(join(fixture.home, "b/a/two.txt"))).isFile()).toBe(true);
    });

    it("follows symlinks that stay inside the home, relative or absolute", async () => {
      await mkdir(join(fixture.home, "real"));
      await writeFile(join(fixture.home, "real/f.txt"), "inside");
      await symlink(join(fixture.home, "real"), join(fixture.home, "absolute"));
      await symlink("../real", join(fixture.home, "real/up"));
      const { files } = fixture.agent;
      expect(await readText(await files.read("absolute/f.txt"))).toBe("inside");
      expect(await readText(await files.read("real/up/up/f.txt"))).toBe("inside");
      expect((await files.list("absolute")).map((entry) => entry.name)).toEqual(["f.txt", "up"]);
      expect(await files.stat("absolute")).toMatchObject({ type: "directory" });
      await files.write("absolute/new.txt", upload("n"));
      expect(await readFile(join(fixture.home, "real/new.txt"), "utf8")).toBe("n");
    });

    it("answers command_failed, with the reason, once the home itself is gone", async () => {
      await rm(fixture.home, { recursive: true, force: true });
      await expect(fixture.agent.files.stat("x")).rejects.toMatchObject({ code: "command_failed" });
      await mkdir(fixture.home);
    });

    it("streams a read with back-pressure and stops it on abort", async () => {
      await writeFile(join(fixture.home, "large.bin"), Buffer.alloc(8 * 1024 * 1024));
      const controller = new AbortController();
      const stream = await fixture.agent.files.read("large.bin", controller.signal);
      stream.pause();
      await sleep(100);
      expect(stream.readableLength).toBeLessThanOrEqual(256 * 1024);
      const reading = readAll(stream).catch((error: unknown) => error);
      controller.abort();
      expect(await reading).toMatchObject({ code: "ERR_STREAM_PREMATURE_CLOSE" });
    });
  });

  describe("files.watch", () => {
    it("reports created, changed and removed entries until the signal aborts", async () => {
      await writeFile(join(fixture.home, "existing.txt"), "v1");
      const controller = new AbortController();
      const events: FileWatchEvent[] = [];
      const watching = (async () => {
        for await (const event of fixture.agent.files.watch(".", controller.signal)) events.push(event);
      })();
      const count = (expected: FileWatchEvent) =>
        events.filter((e) => e.kind === expected.kind && e.path === expected.path).length;
      const seen = async (expected: FileWatchEvent, times = 1) => {
        for (let i = 0; i < 60 && count(expected) < times; i++) await sleep(50);
        expect(count(expected), JSON.stringify(expected)).toBe(times);
      };
      await sleep(200);
      await writeFile(join(fixture.home, "new.txt"), "x");
      await seen({ kind: "rename", path: "new.txt" });
      await writeFile(join(fixture.home, "existing.txt"), "version 2");
      await seen({ kind: "change", path: "existing.txt" });
      await fixture.agent.files.remove("new.txt");
      await seen({ kind: "rename", path: "new.txt" }, 2);
      controller.abort();
      await watching;
    });

    it("fails at once for a path outside the home", async () => {
      const iterator = fixture.agent.files.watch("../", new AbortController().signal)[Symbol.asyncIterator]();
      await expect(iterator.next()).rejects.toMatchObject({ code: "path_outside_home" });
    });
  });
});
