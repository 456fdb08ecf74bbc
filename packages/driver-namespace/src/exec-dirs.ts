/**
 * Host directories for the exec servers' sockets. They cannot live in the sandbox's own
 * directory: bubblewrap, running as the sandbox's uid, binds a directory by path, and the data
 * directory is root's alone. So they sit under one root-owned base (0711: traversable, not
 * listable), one per sandbox, named by a hash of the driver's rootDir and the sandbox id: two
 * drivers on one host never collide, and the socket path stays far below the 107-byte limit of
 * unix socket addresses whatever the ids and directories are.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, link, mkdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXEC_SOCKET_NAME } from "./bwrap-args.js";

const INIT_NAME = "polydev-init";

export class ExecDirs {
  /** Root-owned, mode 711; also where the sandboxes' /etc copies go (see EtcSnapshots). */
  readonly base: string;
  private ready: Promise<string> | undefined;

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
   * The shared base, root-owned and traversable by the sandboxes' uids, holding a root-owned
   * copy of the exec server binary, which bubblewrap (running as the sandbox's uid, unable to
   * read the server's own directories) binds by path. Answers that copy's path.
   *
   * The copy is named by its content and written once, never replaced: every driver and
   * server on the host that runs this build binds the same file, a server restart writes
   * nothing, a running sandbox's mount names the exact build it runs (mountinfo), and no other
   * build's copy is ever touched (another server may still be binding it).
   */
  prepare(binary: string): Promise<string> {
    this.ready ??= (async () => {
      await this.prepareBase();
      const content = await readFile(binary);
      const digest = createHash("sha256").update(content).digest("hex").slice(0, 16);
      const target = join(this.base, `${INIT_NAME}-${digest}`);
      if (existsSync(target)) return target;
      const temporary = join(this.base, `.${INIT_NAME}.${process.pid}.${randomBytes(6).toString("hex")}`);
      try {
        await writeFile(temporary, content, { mode: 0o755 });
        await chmod(temporary, 0o755);
        // link(2), unlike rename, never replaces: a copy another process made first stays.
        await link(temporary, target).catch((error: unknown) => {
          if (!(error instanceof Error && "code" in error && error.code === "EEXIST")) throw error;
        });
      } finally {
        await unlink(temporary).catch(() => undefined);
      }
      return target;
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
