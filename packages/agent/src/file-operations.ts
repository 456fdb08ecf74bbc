/** files.*: stat, list, mkdir, remove and rename answer once; read and write stream with back-pressure. */
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { PolydevError } from "@polydev/core";
import { StreamId } from "./channel.js";
import { parseEntries } from "./file-entries.js";
import { collectStderr, launchScript, runScript, scriptExit, stopWithChannel } from "./file-script-runner.js";
import { fileScriptError } from "./file-scripts.js";
import type { Operation } from "./operation.js";
import { fail, flushed, reply } from "./operation.js";
import { optionalBoolean, optionalNumber, stringField } from "./request-fields.js";
import { checkRelativePath } from "./sandbox-path.js";

export const statOperation: Operation = async ({ launcher }, channel, request) => {
  const path = checkRelativePath(stringField(request, "path"));
  const [entry] = parseEntries(await runScript(launcher, channel, "stat", path), posix.dirname(path));
  if (entry === undefined) throw new PolydevError("not_found", `"${path}" does not exist`);
  reply(channel, { ...entry, name: posix.basename(path), path });
};

export const listOperation: Operation = async ({ launcher }, channel, request) => {
  const path = checkRelativePath(stringField(request, "path"));
  reply(channel, parseEntries(await runScript(launcher, channel, "list", path), path));
};

export const mkdirOperation: Operation = async ({ launcher }, channel, request) => {
  const path = checkRelativePath(stringField(request, "path"));
  const parents = optionalBoolean(request, "parents") ?? true;
  await runScript(launcher, channel, "mkdir", path, [parents ? "parents" : "single"]);
  reply(channel, {});
};

export const removeOperation: Operation = async ({ launcher }, channel, request) => {
  const path = checkRelativePath(stringField(request, "path"));
  if (path === ".") throw new PolydevError("invalid_request", "the home itself cannot be removed");
  const recursive = optionalBoolean(request, "recursive") ?? false;
  await runScript(launcher, channel, "remove", path, [recursive ? "recursive" : "single"]);
  reply(channel, {});
};

export const renameOperation: Operation = async ({ launcher }, channel, request) => {
  const from = checkRelativePath(stringField(request, "from"));
  const to = checkRelativePath(stringField(request, "to"));
  if (from === "." || to === ".")
    throw new PolydevError("invalid_request", "the home itself cannot be moved");
  // The destination goes as an argument; an error names the source, as the other operations do.
  await runScript(launcher, channel, "rename", from, [to]);
  reply(channel, {});
};

export const readOperation: Operation = async ({ launcher }, channel, request) => {
  const path = checkRelativePath(stringField(request, "path"));
  const child = launchScript(launcher, "read", path, []);
  child.stdin.on("error", () => undefined);
  child.stdin.end();
  const release = stopWithChannel(channel, child, "SIGKILL");
  const stderr = collectStderr(child);
  const exited = scriptExit(child);
  const stdout = child.stdout;
  if (!(await readMarker(stdout, exited))) {
    release();
    throw fileScriptError(await exited, path, stderr());
  }
  channel.control({ type: "started" });
  const output = channel.writable(StreamId.stdout);
  stdout.pipe(output, { end: false });
  const code = await exited;
  await finished(stdout).catch(() => undefined);
  release();
  // The stream ends cleanly only when the whole file was read; a failure midway arrives as an
  // error instead of an end, so a reader can never take a truncated file for the whole file.
  if (code !== 0) return fail(channel, fileScriptError(code, path, stderr()));
  output.end();
  await flushed(output);
  channel.close();
};

/** Waits for the script's "checks passed" byte; false if it exited without one. */
function readMarker(stdout: Readable, exited: Promise<number>): Promise<boolean> {
  return new Promise((resolve) => {
    const onReadable = (): void => {
      if (stdout.read(1) === null) return;
      stdout.off("readable", onReadable);
      resolve(true);
    };
    stdout.on("readable", onReadable);
    void exited.then(() => {
      stdout.off("readable", onReadable);
      resolve(false);
    });
  });
}

export const writeOperation: Operation = async ({ launcher }, channel, request) => {
  const path = checkRelativePath(stringField(request, "path"));
  if (path === ".") throw new PolydevError("invalid_request", "the home is a directory, not a file");
  const mode = optionalNumber(request, "mode");
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)) {
    throw new PolydevError("invalid_request", "mode must be a permission number such as 0o644");
  }
  const child = launchScript(launcher, "write", path, [mode === undefined ? "-" : mode.toString(8)]);
  // An abandoned upload is stopped with TERM, which the script traps to delete its temporary file.
  const release = stopWithChannel(channel, child, "SIGTERM");
  const stderr = collectStderr(child);
  const exited = scriptExit(child);
  let size = "";
  child.stdout.on("data", (chunk: Buffer) => {
    if (size.length < 64) size += chunk.toString("utf8");
  });
  const input = channel.readable(StreamId.stdin);
  const stdin = child.stdin;
  stdin.on("error", () => undefined);
  input.pipe(stdin);
  const code = await exited;
  release();
  // Whatever the client still sends after a failure is read and dropped, so it never blocks.
  input.unpipe(stdin);
  input.resume();
  if (code !== 0) throw fileScriptError(code, path, stderr());
  reply(channel, { sizeBytes: Number(size.trim()) });
};
