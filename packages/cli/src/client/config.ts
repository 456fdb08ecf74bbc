/**
 * Where the client finds its server and key: `polydev login` saves them in
 * `$XDG_CONFIG_HOME/polydev/config.json` (default `~/.config/…`, mode 600, it holds a key);
 * POLYDEV_URL and POLYDEV_API_KEY override the file.
 */
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { Polydev } from "@polydev/sdk";
import WebSocket from "ws";
import { CommandError } from "./io.js";

export const DEFAULT_URL = "http://127.0.0.1:7420";

export interface SavedConfig {
  url: string;
  apiKey: string;
}

export function configPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "polydev", "config.json");
}

export async function readConfig(env: NodeJS.ProcessEnv): Promise<SavedConfig | undefined> {
  const path = configPath(env);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CommandError(`${path} is not valid JSON; run 'polydev login' again`);
  }
  const { url, apiKey } = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<
    string,
    unknown
  >;
  if (typeof url !== "string" || typeof apiKey !== "string")
    throw new CommandError(`${path} lacks url or apiKey; run 'polydev login' again`);
  return { url, apiKey };
}

export async function writeConfig(env: NodeJS.ProcessEnv, config: SavedConfig): Promise<string> {
  const path = configPath(env);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // An existing file keeps its old mode on write; the key must not stay readable to others.
  await chmod(path, 0o600);
  return path;
}

/** Answers whether there was a saved login to remove. */
export async function removeConfig(env: NodeJS.ProcessEnv): Promise<boolean> {
  const path = configPath(env);
  const existed = (await readConfig(env).catch(() => undefined)) !== undefined;
  await rm(path, { force: true });
  return existed;
}

/** Trailing slashes would double up in every request path. */
export function normalizeUrl(url: string): string {
  return url.trim().replace(/\/+$/, "");
}

export function clientFor(url: string, apiKey: string): Polydev {
  return new Polydev({ baseUrl: normalizeUrl(url), apiKey, WebSocket });
}

/** The client for the saved login, with the environment's overrides. */
export async function connect(env: NodeJS.ProcessEnv): Promise<{ polydev: Polydev; url: string }> {
  const saved = await readConfig(env);
  const url = env.POLYDEV_URL || saved?.url || DEFAULT_URL;
  const apiKey = env.POLYDEV_API_KEY || saved?.apiKey;
  if (!apiKey)
    throw new CommandError("not logged in: run 'polydev login' (or set POLYDEV_URL and POLYDEV_API_KEY)");
  return { polydev: clientFor(url, apiKey), url: normalizeUrl(url) };
}
