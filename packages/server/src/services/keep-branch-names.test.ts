/** Branch names a keep accepts are exactly the ones real git accepts as branches. */
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { branchNameProblem } from "./keep-service.js";

const NAMES = [
  "main",
  "polydev/abc12345",
  "feature/x-y_z.1",
  "a@b",
  "bad..name",
  "-x",
  "a b",
  "x.lock",
  "dir/x.lock/y",
  "end/",
  "/start",
  "a//b",
  "dot.",
  ".hidden",
  "dir/.hidden",
  "@{u}",
  "a~1",
  "a^",
  "a:b",
  "a?",
  "a*",
  "a[b",
  "a\\b",
  "tab\there",
  "ünïcode",
];

describe("branch names", () => {
  it("refuses names git takes but that read as revisions (@, HEAD)", () => {
    expect(branchNameProblem("@")).toBeDefined();
    expect(branchNameProblem("HEAD")).toBeDefined();
  });

  it.each(NAMES)("agrees with git check-ref-format --branch on %j", (name) => {
    const git = spawnSync("git", ["check-ref-format", "--branch", name], {
      encoding: "utf8",
      // Outside any repository: there --branch would expand "@" to the current branch.
      cwd: tmpdir(),
      env: { ...process.env, GIT_CEILING_DIRECTORIES: tmpdir() },
    });
    expect(branchNameProblem(name) === undefined, branchNameProblem(name) ?? "accepted").toBe(
      git.status === 0,
    );
  });
});
