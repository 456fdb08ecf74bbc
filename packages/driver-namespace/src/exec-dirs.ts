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
import { chmod, copyFile, mkdir, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXEC_SOCKET_NAME } from "./bwrap-args.js";

const INIT_NAME = "polydev-init";

export class ExecDirs {
  /** Root-owned, mode 711; also where the sandboxes' /etc copies go (see EtcSnapshots). */
  readonly base: string;
  private ready: Promise<void> | undefined;

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

  /** Where the exec server binary is bound from into every sandbox. */
  get init(): string {
    return join(this.base, INIT_NAME);
  }

  /**
   * The shared base, root-owned and traversable by the sandboxes' uids, holding a root-owned
   * copy of the exec server binary: bubblewrap runs as the sandbox's uid and binds the binary
   * by path, which the server's own directories may not allow. A copy replaced by rename leaves
   * running sandboxes on the inode they started with.
   */
  prepare(binary: string): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.base, { recursive: true, mode: 0o711 });
      await chmod(this.base, 0o711);
      const temporary = join(
        this.base,
        `.${INIT_NAME}.${process.pid}.${Math.random().toString(36).slice(2)}`,
      );
      await copyFile(binary, temporary);
      await chmod(temporary, 0o755);
      await rename(temporary, this.init);
    })();
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  /** The shared base: root-owned and traversable by the sandboxes' uids, not listable. */
  async prepareBase(): Promise<void> {
    await mkdir(this.base, { recursive: true, mode: 0o711 });
    await chmod(this.base, 0o711);
  }

  remove(id: string): Promise<void> {
    return rm(this.dir(id), { recursive: true, force: true });
  }
}
