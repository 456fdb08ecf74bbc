/** Host tools the driver runs (apt-get, mkfs.ext4, qemu-img, cpio): a fixed PATH, no inherited env. */
import { execFile } from "node:child_process";
import { PolydevError } from "@polydev/core";

const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function hostCommand(
  file: string,
  args: string[],
  options: { cwd?: string; signal?: AbortSignal; what?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        env: { PATH: HOST_PATH, LANG: "C.UTF-8" },
        maxBuffer: 16 * 1024 * 1024,
        ...(options.cwd ? { cwd: options.cwd } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new PolydevError(
              "driver_unavailable",
              `${options.what ?? file} failed: ${String(stderr).slice(-2000) || error.message}`,
              { cause: error },
            ),
          );
        } else resolve(String(stdout));
      },
    );
  });
}
