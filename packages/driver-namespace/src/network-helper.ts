/**
 * Runs the exec server binary on the host, as root, for a sandbox's network namespace
 * (--deny-routes, --egress-setup): an empty environment, argv made only of the init's pid and
 * fixed values, and at most STDERR_LIMIT bytes of what it says kept for the error.
 */
import { spawn } from "node:child_process";

const STDERR_LIMIT = 2048;

export function runNetworkHelper(binary: string, args: string[], failure: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env: {}, cwd: "/", stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      if (stderr.length < STDERR_LIMIT) stderr += chunk.toString("utf8");
    });
    child.once("error", reject);
    child.once("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${failure}: ${stderr.slice(0, STDERR_LIMIT).trim() || `exit ${code}`}`));
    });
  });
}
