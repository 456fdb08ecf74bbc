/**
 * The ImageStorage shape over plain directories (no quotas, byte copies instead of reflinks), for
 * tests and for hosts without the XFS storage pool. Limits are accepted and not enforced.
 */
import { execFile } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize } from "node:path";
import { promisify } from "node:util";
import type { ImageStorage } from "../services/image-ports.js";

const run = promisify(execFile);

export class PlainImageStorage implements ImageStorage {
  constructor(readonly root: string) {}

  private resolve(rel: string): string {
    const clean = normalize(rel);
    if (isAbsolute(clean) || clean === "." || clean.startsWith("..")) {
      throw new Error(`storage path ${rel} must be relative and inside the storage`);
    }
    return join(this.root, clean);
  }

  async createDir(rel: string, _limitBytes: number | null): Promise<string> {
    const path = this.resolve(rel);
    // Parents are root-only: layer contents keep the image's owners, which mean nothing on the host.
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await mkdir(path, { mode: 0o755 });
    return path;
  }

  async cloneDir(from: string, to: string, _limitBytes: number | null): Promise<string> {
    const path = this.resolve(to);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    // A fixed argv of server-chosen paths; `--` so no path reads as an option.
    await run("cp", ["-a", "--reflink=auto", "-T", "--", from, path]).catch(async (error) => {
      await rm(path, { recursive: true, force: true });
      throw error;
    });
    return path;
  }

  async removeDir(rel: string): Promise<void> {
    await rm(this.resolve(rel), { recursive: true, force: true });
  }
}
