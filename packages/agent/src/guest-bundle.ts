/**
 * The agent as one file for a guest that has node but no node_modules (the gVisor layer, the
 * microVM initramfs). Each driver has its own entry (`guest-agent.ts` beside its sources); what
 * turns that entry into a bundle, and where the native node-pty it needs lives, is the same for
 * every driver, so it is here. A subpath of its own keeps esbuild out of the agent's own bundle.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { PolydevError } from "@polydev/core";

/** The entry's TypeScript source when running from source (tests), else its build. */
function guestEntry(dir: string): { path: string; conditions: string[] } {
  const source = join(dir, "guest-agent.ts");
  if (existsSync(source)) return { path: source, conditions: ["source"] };
  return { path: join(dir, "guest-agent.js"), conditions: [] };
}

/** Bundles `<dir>/guest-agent.{ts,js}` into one ESM file's text. */
export async function bundleGuestAgent(dir: string): Promise<string> {
  const { build } = await import("esbuild");
  const entry = guestEntry(dir);
  const result = await build({
    entryPoints: [entry.path],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    write: false,
    conditions: entry.conditions,
    // Native: copied beside the bundle and resolved from its node_modules.
    external: ["node-pty"],
    // Bundled CommonJS dependencies call require(); ESM has none of its own.
    banner: {
      js: "import { createRequire as __polydevRequire } from 'node:module'; const require = __polydevRequire(import.meta.url);",
    },
    logLevel: "silent",
  });
  const output = result.outputFiles[0];
  if (output === undefined) throw new PolydevError("internal", "esbuild produced no agent bundle");
  return output.text;
}

/** node-pty's files a running agent needs (its JavaScript and the built addon), not its sources. */
export function nodePtyDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("node-pty/package.json"));
}
