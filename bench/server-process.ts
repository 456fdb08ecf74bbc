/** Runs the built `polydev up` as a separate process for benchmarks. */
import { spawn, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";

export interface ServerProcess {
  url: string;
  adminKey: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startServerProcess(
  dataDir: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const main = resolve(import.meta.dirname, "../packages/cli/dist/main.js");
  // e.g. BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to see where a server spends its CPU
  // (Node refuses --cpu-prof in NODE_OPTIONS).
  const flags = process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(" ") : [];
  const child = spawn(process.execPath, [...flags, main, "up", "--port", "0", "--data-dir", dataDir], {
    env: { ...process.env, POLYDEV_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  const url = await new Promise<string>((resolveUrl, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /running at (http:\/\/\S+)/.exec(output);
      if (match?.[1]) resolveUrl(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`polydev up exited with ${code}: ${output}`)));
  });
  const adminKey = (await readFile(join(dataDir, "admin-api-key"), "utf8")).trim();
  if (child.pid === undefined) throw new Error("no server pid");
  return {
    url,
    adminKey,
    pid: child.pid,
    stop: async () => {
      await new Promise<void>((resolveStop) => {
        child.once("exit", () => resolveStop());
        child.kill("SIGTERM");
      });
      // The server leaves its storage pool mounted (its sandboxes outlive it): released here.
      await unmountUnder(dataDir);
    },
  };
}

/**
 * Everything a server may leave mounted under its data directory (the storage pool, its disks),
 * lazily unmounted deepest first, so the directory can be removed.
 */
export async function unmountUnder(dir: string): Promise<void> {
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  const points = mountinfo
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point === dir || point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of points) spawnSync("umount", ["-l", point], { stdio: "ignore" });
}
