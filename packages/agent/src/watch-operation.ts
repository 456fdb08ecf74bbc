/**
 * files.watch polls: it lists the tree inside the sandbox every `intervalMs` (default 500) and
 * reports the differences. Polling because the base system has no inotify-tools, and because a
 * listing works the same for every driver, while inotify does not cross into a guest VM or a
 * pod; the price is latency and a bounded amount of work per poll (see the snapshot script).
 */
import { posix } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isPolydevError } from "@polydev/core";
import type { Channel } from "./channel.js";
import { parseSnapshot } from "./file-entries.js";
import { runScript } from "./file-script-runner.js";
import type { Operation } from "./operation.js";
import { optionalNumber, stringField } from "./request-fields.js";
import { checkRelativePath } from "./sandbox-path.js";

export const DEFAULT_WATCH_INTERVAL_MS = 500;

export const watchOperation: Operation = async ({ launcher }, channel, request) => {
  const path = checkRelativePath(stringField(request, "path"));
  const intervalMs = Math.min(
    60_000,
    Math.max(50, optionalNumber(request, "intervalMs") ?? DEFAULT_WATCH_INTERVAL_MS),
  );
  const snapshot = async (): Promise<Map<string, string> | undefined> => {
    try {
      return parseSnapshot(await runScript(launcher, channel, "snapshot", path));
    } catch (error) {
      // The directory went away: everything in it is reported gone, and it may come back.
      if (isPolydevError(error) && error.code === "not_found") return new Map();
      return undefined; // a failed poll is skipped, not reported as every file vanishing
    }
  };
  let previous = parseSnapshot(await runScript(launcher, channel, "snapshot", path));
  channel.control({ type: "started" });
  const closed = new AbortController();
  channel.once("close", () => closed.abort());
  while (!channel.closed) {
    await sleep(intervalMs, undefined, { signal: closed.signal }).catch(() => undefined);
    if (channel.closed) return;
    const current = await snapshot();
    if (current === undefined || channel.closed) continue;
    report(channel, path, previous, current);
    previous = current;
  }
};

function report(
  channel: Channel,
  root: string,
  before: Map<string, string>,
  after: Map<string, string>,
): void {
  const event = (kind: "change" | "rename", path: string): void =>
    channel.control({ type: "event", kind, path: posix.join(root, path) });
  for (const [path, signature] of after) {
    const old = before.get(path);
    if (old === undefined) event("rename", path);
    else if (old !== signature) event("change", path);
  }
  for (const path of before.keys()) if (!after.has(path)) event("rename", path);
}
