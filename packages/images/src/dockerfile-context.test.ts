import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPolydevError } from "@polydev/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { contextFiles } from "./dockerfile-context.js";
import { contextDigest, layerCacheKeys, parseDockerfile } from "./dockerfile-parse.js";

const LIMITS = { maxFiles: 1000, maxBytes: 1024 * 1024 };
const SECRET = "TOP-SECRET-OUTSIDE-THE-CONTEXT";
const sha = (data: string) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

let dir: string;
let context: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "polydev-context-"));
  context = join(dir, "context");
  await mkdir(join(context, "src", "lib"), { recursive: true });
  await writeFile(join(context, "package.json"), '{"name":"app"}');
  await writeFile(join(context, "src", "index.js"), "console.log(1)");
  await writeFile(join(context, "src", "lib", "util.js"), "export {}");
  await writeFile(join(context, "a.txt"), "a");
  await writeFile(join(context, "b.txt"), "b");
  await writeFile(join(context, "c.md"), "c");
  await writeFile(join(dir, "secret"), SECRET);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(sources: string[], limits = LIMITS) {
  try {
    await contextFiles(context, sources, limits);
  } catch (error) {
    if (!isPolydevError(error)) throw error;
    return { code: error.code, message: error.message };
  }
  throw new Error("resolved, expected a refusal");
}

describe("contextFiles", () => {
  it("lists a file and a directory's contents with their digests", async () => {
    const { files, bytes } = await contextFiles(context, ["package.json", "src/"], LIMITS);
    expect(files.map((f) => [f.path, f.target, f.type])).toEqual([
      ["package.json", "package.json", "file"],
      ["src", "", "directory"],
      ["src/index.js", "index.js", "file"],
      ["src/lib", "lib", "directory"],
      ["src/lib/util.js", "lib/util.js", "file"],
    ]);
    expect(files[0]?.sha256).toBe(sha('{"name":"app"}'));
    expect(bytes).toBe(14 + 14 + 9);
  });

  it("expands * and ? in the last component", async () => {
    const star = await contextFiles(context, ["*.txt"], LIMITS);
    expect(star.files.map((f) => f.path)).toEqual(["a.txt", "b.txt"]);
    const question = await contextFiles(context, ["?.md"], LIMITS);
    expect(question.files.map((f) => f.path)).toEqual(["c.md"]);
    expect((await refusal(["*.none"])).message).toMatch(/matches no file/);
    expect((await refusal(["s*/index.js"])).message).toMatch(/only the last/);
    expect((await refusal(["[ab].txt"])).message).toMatch(/character classes/);
  });

  it("refuses ../x and a missing source", async () => {
    // a same-named file inside: clamping ../secret to the context root would find it, refusing does not
    await writeFile(join(context, "secret"), "inside");
    expect(await refusal(["../secret"])).toMatchObject({ code: "invalid_request" });
    expect(await refusal(["src/../../secret"])).toMatchObject({ code: "invalid_request" });
    expect((await refusal(["nothing-here"])).message).toMatch(/does not exist/);
  });

  it("refuses a symlink leading out of the context and never reads outside", async () => {
    await symlink("../secret", join(context, "up"));
    await symlink(join(dir, "secret"), join(context, "abs"));
    await symlink("..", join(context, "parent"));
    expect((await refusal(["up"])).code).toBe("invalid_request");
    expect((await refusal(["abs"])).message).toMatch(/outside the build context/);
    expect((await refusal(["parent/secret"])).message).toMatch(/out of the build context/);
    expect((await refusal(["*"])).code).toBe("invalid_request");
  });

  it("keeps symlinks inside a copied directory as links, never following them", async () => {
    await symlink("../../secret", join(context, "src", "escape"));
    await symlink(join(dir, "secret"), join(context, "src", "absolute"));
    const { files } = await contextFiles(context, ["src"], LIMITS);
    const links = files.filter((f) => f.type === "symlink");
    expect(links.map((f) => [f.path, f.linkTarget])).toEqual([
      ["src/absolute", join(dir, "secret")],
      ["src/escape", "../../secret"],
    ]);
    const inputs = JSON.stringify(files);
    expect(inputs).not.toContain(SECRET);
    expect(inputs).not.toContain(sha(SECRET));
  });

  it("opens nothing outside the context (a FIFO outside would block any open)", async () => {
    execFileSync("mkfifo", [join(dir, "fifo")]);
    await symlink("../fifo", join(context, "fifo-up"));
    await symlink("../../fifo", join(context, "src", "fifo-link"));
    expect((await refusal(["fifo-up"])).code).toBe("invalid_request");
    const { files } = await contextFiles(context, ["src", "*.txt"], LIMITS);
    expect(files.find((f) => f.path === "src/fifo-link")).toMatchObject({
      type: "symlink",
      linkTarget: "../../fifo",
    });
  });

  it("follows a source symlink that stays inside the context", async () => {
    await symlink("src/lib", join(context, "lib-link"));
    await symlink("lib-link/util.js", join(context, "util-link"));
    const { files } = await contextFiles(context, ["lib-link", "util-link"], LIMITS);
    expect(files.map((f) => [f.path, f.contextPath, f.target])).toEqual([
      ["lib-link", "src/lib", ""],
      ["lib-link/util.js", "src/lib/util.js", "util.js"],
      ["util-link", "src/lib/util.js", "util-link"],
    ]);
    await symlink("loop-b", join(context, "loop-a"));
    await symlink("loop-a", join(context, "loop-b"));
    expect((await refusal(["loop-a"])).message).toMatch(/too many levels/);
  });

  it("bounds files and bytes with payload_too_large", async () => {
    expect((await refusal(["src"], { maxFiles: 3, maxBytes: 1 << 20 })).code).toBe("payload_too_large");
    expect((await refusal(["src"], { maxFiles: 100, maxBytes: 20 })).code).toBe("payload_too_large");
    expect((await contextFiles(context, ["src"], { maxFiles: 4, maxBytes: 23 })).files).toHaveLength(4);
  });

  it("changes only the COPY step's key and later ones when a context file changes", async () => {
    const plan = parseDockerfile("FROM debian\nRUN apt-get update\nCOPY src/ /app/\nRUN make\n");
    const keysNow = async () => {
      const { files } = await contextFiles(context, ["src/"], LIMITS);
      const digest = contextDigest(files);
      return layerCacheKeys(plan, `sha256:${"b".repeat(64)}`, () => digest).map((k) => k.key);
    };
    const before = await keysNow();
    expect(await keysNow()).toEqual(before);
    await writeFile(join(context, "src", "lib", "util.js"), "export const x = 1");
    const changed = await keysNow();
    expect(changed[0]).toBe(before[0]);
    expect(changed[1]).not.toBe(before[1]);
    expect(changed[2]).not.toBe(before[2]);
    await writeFile(join(context, "src", "lib", "util.js"), "export {}");
    expect(await keysNow()).toEqual(before);
    await chmod(join(context, "src", "index.js"), 0o755);
    expect((await keysNow())[1]).not.toBe(before[1]);
    // a file outside the copied sources changes nothing
    await chmod(join(context, "src", "index.js"), 0o644);
    await writeFile(join(context, "a.txt"), "changed");
    expect(await keysNow()).toEqual(before);
  });
});
