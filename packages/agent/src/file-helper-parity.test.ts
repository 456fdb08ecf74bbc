/**
 * The init binary's file helper and the sh scripts it replaces answer alike: every operation on
 * every path of a tree full of awkward symlinks gives the same exit code, the same output (times
 * aside) and leaves the same tree. Paths with `..` are left out (the agent refuses them before
 * either runs), as are symlink loops, where the helper fails with the reason (96) and the
 * scripts answer "not found".
 */
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { FileScript } from "./file-scripts.js";
import { fileScripts } from "./file-scripts.js";

const INIT_BINARY = fileURLToPath(
  new URL("../../driver-namespace/dist/polydev-exec-server", import.meta.url),
);

function makeTree(): { root: string; home: string } {
  const root = mkdtempSync(join(tmpdir(), "polydev-parity-"));
  const home = join(root, "home");
  mkdirSync(join(home, "d/sub"), { recursive: true });
  mkdirSync(join(home, "empty"));
  writeFileSync(join(home, "d/f.txt"), "file");
  writeFileSync(join(root, "outside.txt"), "outside");
  symlinkSync("f.txt", join(home, "d/rel-link"));
  symlinkSync(join(home, "d"), join(home, "abs-in"));
  symlinkSync("/etc", join(home, "etc"));
  symlinkSync("../outside.txt", join(home, "out-link"));
  symlinkSync("missing-target", join(home, "dangling"));
  symlinkSync("d/sub", join(home, "sub-link"));
  symlinkSync(".", join(home, "self"));
  return { root, home };
}

/** Every entry below `dir`: type, path and a symlink's target, plus each file's content. */
function describeTree(dir: string, prefix = ""): string[] {
  const lines: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    const shown = `${prefix}${name}`;
    if (stat.isSymbolicLink()) lines.push(`l ${shown} -> ${readlinkSync(path)}`);
    else if (stat.isDirectory()) lines.push(`d ${shown}`, ...describeTree(path, `${shown}/`));
    else lines.push(`f ${shown} ${(stat.mode & 0o7777).toString(8)} ${stat.size}`);
  }
  return lines;
}

const PATHS = [
  ".",
  "d",
  "d/f.txt",
  "d/rel-link",
  "abs-in",
  "abs-in/f.txt",
  "etc",
  "etc/passwd",
  "out-link",
  "dangling",
  "dangling/x",
  "sub-link",
  "self/self/d",
  "missing",
  "missing/x",
  "d/f.txt/x",
  "empty",
  "new-file",
];
const OPERATIONS: [FileScript, ...string[]][] = [
  ["stat"],
  ["list"],
  ["read"],
  ["snapshot"],
  ["write", "-"],
  ["write", "600"],
  ["mkdir", "parents"],
  ["mkdir", "single"],
  ["remove", "single"],
  ["remove", "recursive"],
  ["rename", "moved"],
  ["rename", "d/sub"],
  ["rename", "empty"],
  ["rename", "etc/x"],
];

function run(implementation: "sh" | "helper", script: FileScript, path: string, args: string[]) {
  const { root, home } = makeTree();
  try {
    const argv =
      implementation === "sh"
        ? ["/bin/sh", "-c", fileScripts[script], "sh", home, path, ...args]
        : [INIT_BINARY, "--file", script, home, path, ...args];
    const result = spawnSync(argv[0] ?? "", argv.slice(1), { input: "uploaded", cwd: home, env: {} });
    const output = result.stdout
      .toString("latin1")
      .replaceAll(root, "ROOT")
      // Directory sizes and times differ between two fresh trees; the rest must not.
      .replace(/\t\d+\.\d+\t/g, "\tTIME\t")
      .replace(/(^|\0)d\t\d+/g, "$1d\tSIZE")
      .split("\0")
      .sort();
    return {
      exitCode: result.status,
      output,
      tree: describeTree(root).map((line) => line.replaceAll(root, "ROOT")),
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe("the file helper and the sh scripts", () => {
  it.each(OPERATIONS.map(([script, ...args]) => ({ script, args, name: [script, ...args].join(" ") })))(
    "answer $name alike on every path",
    ({ script, args }) => {
      if (!existsSync(INIT_BINARY))
        throw new Error(`${INIT_BINARY} is missing: run scripts/ensure.sh to build it`);
      const differences: string[] = [];
      for (const path of PATHS) {
        const sh = run("sh", script, path, args);
        const helper = run("helper", script, path, args);
        if (JSON.stringify(sh) !== JSON.stringify(helper)) {
          differences.push(`"${path}": ${JSON.stringify({ sh, helper })}`);
        }
      }
      expect(differences).toEqual([]);
    },
  );
});
