/**
 * Host directories for the exec servers' sockets. They cannot live in the sandbox's own
 * directory: bubblewrap, running as the sandbox's uid, binds a directory by path, and the data
 * directory is root's alone. So each driver gets `<root>/<hash of its rootDir>/` (root-owned,
 * 0711: traversable, not listable), and each sandbox a directory below that, named by a hash of
 * its id so the socket path stays far below the 107-byte limit of unix socket addresses.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXEC_SOCKET_NAME } from "./bwrap-args.js";

const shortHash = (text: string, length: number): string =>
  createHash("sha256").update(text).digest("hex").slice(0, length);

export class ExecDirs {
  private readonly base: string;
  private readonly root: string;
  private ready: Promise<void> | undefined;

  constructor(
    rootDir: string,
    base = existsSync("/run") ? "/run/polydev-exec" : join(tmpdir(), "polydev-exec"),
  ) {
    this.base = base;
    this.root = join(base, shortHash(rootDir, 12));
  }

  dir(id: string): string {
    return join(this.root, shortHash(id, 16));
  }

  socket(id: string): string {
    return join(this.dir(id), EXEC_SOCKET_NAME);
  }

  /** The two shared levels, root-owned and traversable by the sandboxes' uids. */
  prepare(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.root, { recursive: true, mode: 0o711 });
      await chmod(this.base, 0o711);
      await chmod(this.root, 0o711);
    })();
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  remove(id: string): Promise<void> {
    return rm(this.dir(id), { recursive: true, force: true });
  }
}
