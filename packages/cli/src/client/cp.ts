/** `polydev cp`: one file into or out of a sandbox, streamed both ways. */
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { connect } from "./config.js";
import { CommandError, EXIT_OK, parseCommand, runCommand, UsageError, withSpinner } from "./io.js";

export const CP_HELP = `Usage: polydev cp SRC DST

Copies one file between this machine and a sandbox; the sandbox side is written SANDBOX_ID:PATH
(relative to the sandbox's home). A DST ending in / (or an existing local directory) keeps the
file's name. Directories are not copied: pack them first (tar czf x.tgz dir).
A local path containing ':' can be written ./like:this.

Examples:
  polydev cp ./report.csv sbx_123:data/report.csv
  polydev cp sbx_123:out/result.json .
`;

interface RemotePath {
  sandboxId: string;
  path: string;
}

/** `sbx_1:notes.txt` is remote; `./a:b`, `/tmp/a:b` and `a.txt` are local. */
export function parseRemote(arg: string): RemotePath | undefined {
  const match = /^([A-Za-z0-9_-]+):(.*)$/.exec(arg);
  if (!match?.[1] || match[2] === undefined) return undefined;
  return { sandboxId: match[1], path: match[2] };
}

export function cp(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev cp", async () => {
    const parsed = parseCommand(argv, {}, CP_HELP);
    if (!parsed) return EXIT_OK;
    const [src, dst, extra] = parsed.positionals;
    if (src === undefined || dst === undefined) throw new UsageError("cp takes SRC and DST");
    if (extra !== undefined) throw new UsageError(`cp copies one file; unexpected argument "${extra}"`);
    const from = parseRemote(src);
    const to = parseRemote(dst);
    if ((from === undefined) === (to === undefined))
      throw new UsageError("exactly one side must be in a sandbox, written SANDBOX_ID:PATH");
    const { polydev } = await connect(env);

    if (to) {
      const info = await stat(src).catch(() => undefined);
      if (!info) throw new CommandError(`${src}: no such file`);
      if (info.isDirectory())
        throw new CommandError(
          `${src} is a directory; cp copies one file (pack it first: tar czf x.tgz ${src})`,
        );
      const remotePath = to.path === "" || to.path.endsWith("/") ? `${to.path}${basename(src)}` : to.path;
      const body = Readable.toWeb(createReadStream(src)) as ReadableStream<Uint8Array>;
      const written = await withSpinner(`Uploading ${src}`, () =>
        polydev.sandboxes.writeFile(to.sandboxId, remotePath, body),
      );
      process.stderr.write(`${src} → ${to.sandboxId}:${written.path} (${written.sizeBytes} bytes)\n`);
      return EXIT_OK;
    }

    if (!from) throw new UsageError("exactly one side must be in a sandbox");
    const remoteName = basename(from.path);
    const localInfo = await stat(dst).catch(() => undefined);
    const target = localInfo?.isDirectory() || dst.endsWith("/") ? join(dst, remoteName) : dst;
    // Written beside the target and renamed at the end: a failed copy leaves no half file behind.
    const partial = `${target}.polydev-partial`;
    try {
      await withSpinner(`Downloading ${src}`, async () => {
        const stream = await polydev.sandboxes.readFile(from.sandboxId, from.path);
        await pipeline(Readable.fromWeb(stream as WebReadableStream<Uint8Array>), createWriteStream(partial));
      });
      await rename(partial, target);
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
    process.stderr.write(`${src} → ${target}\n`);
    return EXIT_OK;
  });
}
