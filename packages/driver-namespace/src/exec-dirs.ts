/**
 * Host directories for the exec servers' sockets. They cannot live in the sandbox's own
 * directory: bubblewrap, running as the sandbox's uid, binds a directory by path, and the data
 * directory is root's alone. So they sit under one root-owned base (0711: traversable, not
 * listable), one per sandbox, named by a hash of the driver's rootDir and the sandbox id: two
 * drivers on one host never collide, and the socket path stays far below the 107-byte limit of
 * unix socket addresses whatever the ids and directories are.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, link, mkdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXEC_SOCKET_NAME } from "./bwrap-args.js";

const INIT_NAME = "polydev-init";

export class ExecDirs {
  private readonly base: string;
  private ready: Promise<void> | undefined;
  private initPath: string | undefined;

  constructor(
    private readonly rootDir: string,
    base?: string,
  ) {
    this.base = base ?? (existsSync("/run") ? "/run/polydev-exec" : join(tmpdir(), "polydev-exec"));
  }

  dir(id: string): string {
    const name = createHash("sha256").update(`${this.rootDir}\0${id}`).digest("hex").slice(0, 24);
    return join(this.base, name);
  }

  socket(id: string): string {
    return join(this.dir(id), EXEC_SOCKET_NAME);
  }

  /**
   * Where the exec server binary is bound from into every sandbox (after `prepare`): a name
   * that says what it holds, written once and never replaced, because a single-file bind mount
   * detaches from a path that is replaced by rename (another server starting, another version)
   * and running sandboxes would lose their /run/polydev-init.
   */
  get init(): string {
    if (this.initPath === undefined) throw new Error("ExecDirs.prepare has not run");
    return this.initPath;
  }

  /**
   * The shared base, root-owned and traversable by the sandboxes' uids, holding a root-owned
   * copy of the exec server binary named by its content: bubblewrap runs as the sandbox's uid
   * and binds the binary by path, which the server's own directories may not allow.
   */
  prepare(binary: string): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.base, { recursive: true, mode: 0o711 });
      await chmod(this.base, 0o711);
      const digest = createHash("sha256")
        .update(await readFile(binary))
        .digest("hex")
        .slice(0, 16);
      const target = join(this.base, `${INIT_NAME}-${digest}`);
      if (!existsSync(target)) {
        const temporary = join(
          this.base,
          `.${INIT_NAME}.${process.pid}.${Math.random().toString(36).slice(2)}`,
        );
        await copyFile(binary, temporary);
        await chmod(temporary, 0o755);
        // link, not rename: it never replaces a file a concurrent writer put there first (with
        // the same bytes), so no sandbox's bind of it ever detaches.
        await link(temporary, target).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== "EEXIST") throw error;
        });
        await rm(temporary, { force: true });
      }
      this.initPath = target;
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
