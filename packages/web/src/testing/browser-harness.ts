/**
 * What the dashboard's Chromium tests share: a fresh build of the dashboard to serve, and a
 * headless Chromium. Excluded from the dashboard's own type check (like the tests): it runs in Node.
 */
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Browser } from "playwright-core";
import { chromium } from "playwright-core";

export const webRoot = resolve(import.meta.dirname, "../..");
export const repoRoot = resolve(webRoot, "../..");
export const distDir = join(webRoot, "dist");
export const screenshots = join(repoRoot, "test-artifacts", "screenshots");
const distIndex = join(distDir, "index.html");
const CHROMIUM = "/usr/bin/chromium";

/** The newest modification time under a path (files and folders). */
async function newestMtimeMs(path: string): Promise<number> {
  const info = await stat(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = info.mtimeMs;
  for (const entry of await readdir(path)) newest = Math.max(newest, await newestMtimeMs(join(path, entry)));
  return newest;
}

/**
 * The server serves packages/web/dist; a missing or stale build would test old code. Setup
 * (scripts/ensure.sh) builds it; when run on its own after an edit, this builds it once more.
 */
export async function ensureDashboardBuilt(): Promise<void> {
  const sources = Math.max(
    await newestMtimeMs(join(webRoot, "src")),
    await newestMtimeMs(join(webRoot, "index.html")),
    await newestMtimeMs(join(repoRoot, "packages/sdk/src")),
  );
  if (existsSync(distIndex) && statSync(distIndex).mtimeMs >= sources) return;
  try {
    // Vitest sets NODE_ENV=test, which would make Vite bundle React's development build.
    execFileSync("npx", ["vite", "build", "--logLevel", "error"], {
      cwd: webRoot,
      stdio: "pipe",
      env: { ...process.env, NODE_ENV: "production" },
    });
  } catch (error) {
    const output = error instanceof Error && "stderr" in error ? String(error.stderr) : String(error);
    throw new Error(
      `the dashboard is not built and building it failed; run \`bash scripts/ensure.sh\` (or \`npx vite build\` in packages/web) and fix:\n${output}`,
    );
  }
  if (!existsSync(distIndex)) throw new Error(`the dashboard build wrote no ${distIndex}`);
}

/** Debian's Chromium, headless, with nothing of its own reaching out to the network. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); scripts/test.sh does it as root`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}
