/** Baselines measured in the same run: what the host costs before Polydev adds anything. */
import { spawn } from "node:child_process";
import { timeIt } from "./stats.js";

function run(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "inherit"] });
    child.stdout.resume();
    child.once("error", reject);
    child.once("exit", (code) => resolve(code ?? -1));
  });
}

export const RAW_BWRAP_ARGS = [
  "--unshare-all",
  "--ro-bind",
  "/usr",
  "/usr",
  "--symlink",
  "usr/bin",
  "/bin",
  "--symlink",
  "usr/lib",
  "/lib",
  "--symlink",
  "usr/lib64",
  "/lib64",
  "--proc",
  "/proc",
  "--dev",
  "/dev",
  "--tmpfs",
  "/tmp",
  "/bin/true",
];

export async function rawSpawnSamples(count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push((await timeIt(() => run("/bin/true", []))).ms);
  return samples;
}

export async function rawBwrapSamples(count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push((await timeIt(() => run("bwrap", RAW_BWRAP_ARGS))).ms);
  return samples;
}
