/**
 * Moving a process into a cgroup takes the kernel's global threadgroup lock for writing, and
 * by default that waits out an RCU grace period first: ~12 ms on the build machines, paid once
 * per sandbox create (it was the largest single cost of a create). The cgroup2 mount option
 * `favordynmods` keeps that lock in its writer-friendly mode, at the price of slightly dearer
 * forks and exits; the lock is shared by every hierarchy, so setting it on the cgroup2 mount
 * (the unified one, on a hybrid v1 host) speeds up v1 migrations too. The kernel documents the
 * option for exactly this trade ("reduce the latencies of dynamic cgroup modifications such as
 * task migrations").
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";

export type TuningResult =
  | { state: "enabled" | "already"; mountPoint: string }
  | { state: "unavailable"; reason: string };

export async function favorDynamicCgroupChanges(): Promise<TuningResult> {
  const mounts = await readFile("/proc/self/mounts", "utf8").catch(() => "");
  const cgroup2 = mounts
    .split("\n")
    .map((line) => line.split(" "))
    .find((fields) => fields[2] === "cgroup2");
  const mountPoint = cgroup2?.[1];
  if (mountPoint === undefined) return { state: "unavailable", reason: "no cgroup2 mount" };
  if ((cgroup2?.[3] ?? "").split(",").includes("favordynmods")) return { state: "already", mountPoint };
  const features = await readFile("/sys/kernel/cgroup/features", "utf8").catch(() => "");
  if (!features.split("\n").includes("favordynmods")) {
    return { state: "unavailable", reason: "the kernel has no favordynmods" };
  }
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn("/usr/bin/mount", ["-o", "remount,favordynmods", mountPoint], { stdio: "ignore" });
    child.once("error", () => resolve(null));
    child.once("exit", (exitCode) => resolve(exitCode));
  });
  return code === 0
    ? { state: "enabled", mountPoint }
    : { state: "unavailable", reason: `mount -o remount,favordynmods ${mountPoint} failed` };
}
