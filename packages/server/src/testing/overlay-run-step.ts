/**
 * A real (host-root, test-only) runner of Dockerfile RUN steps, standing in for the sandbox the
 * lead's runner uses: the parent image's layer directories are the lower dirs of an overlayfs
 * mount whose upper dir is a fresh storage directory, and the command runs chrooted into the merged
 * tree in new mount and pid namespaces (`unshare --root`). The upper dir, whiteouts included, is
 * the step's layer. Needs root (mount, chroot); it gives no isolation a sandbox would, so it runs
 * only the tests' own Dockerfiles.
 */
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ImageStorage, RunStep } from "../services/image-ports.js";

const run = promisify(execFile);

/** Why this runner cannot work here, or null. */
export function overlayRunStepUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root to mount overlayfs and chroot";
  return null;
}

export class OverlayRunStep {
  constructor(private readonly storage: ImageStorage) {}

  readonly run: RunStep = async (request) => {
    const id = randomUUID();
    const upper = await this.storage.createDir(`steps/${id}`, null);
    // overlayfs wants its work dir on the upper dir's file system, empty, and not inside it.
    const work = await this.storage.createDir(`step-work/${id}/work`, null);
    const merged = await this.storage.createDir(`step-work/${id}/merged`, null);
    const lower = [...request.parent.layers].reverse().join(":");
    await run("mount", [
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
      merged,
    ]);
    try {
      // Docker makes the WORKDIR; so does this, through the overlay (it lands in the upper dir).
      await mkdir(join(merged, request.workdir), { recursive: true });
      const child = spawn(
        "unshare",
        ["--mount", "--pid", "--fork", `--root=${merged}`, `--wd=${request.workdir}`, "--", ...request.argv],
        { env: request.env, stdio: ["ignore", "pipe", "pipe"], signal: request.signal },
      );
      child.stdout.on("data", (chunk: Buffer) => request.onOutput(chunk.toString("utf8")));
      child.stderr.on("data", (chunk: Buffer) => request.onOutput(chunk.toString("utf8")));
      const exitCode = await new Promise<number>((resolve, reject) => {
        child.once("error", reject);
        child.once("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
      });
      return { exitCode, layerDir: upper };
    } finally {
      await run("umount", [merged]);
      await this.storage.removeDir(`step-work/${id}`);
    }
  };
}
