/**
 * Master keys. One key is current (new records are sealed with it); older keys stay until no
 * record uses them, so rotation never makes a record unreadable. The key file is JSON, mode 600,
 * created on first start when POLYDEV_MASTER_KEY is not set.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { PolydevError } from "@polydev/core";

export interface Keyring {
  currentKeyId: string;
  keys: ReadonlyMap<string, Buffer>;
}

interface KeyFile {
  version: 1;
  current: string;
  keys: { id: string; key: string; createdAt: string }[];
}

/** Ids are a hash of the key: stable, unique, and reveal nothing about it. */
export function keyIdOf(key: Buffer): string {
  return createHash("sha256").update("polydev-master-key-id").update(key).digest("hex").slice(0, 16);
}

/** POLYDEV_MASTER_KEY: 32 bytes as 64 hex characters or as base64. */
export function parseMasterKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, "hex")
    : Buffer.from(trimmed, "base64");
  if (key.length !== 32 || (!/^[0-9a-fA-F]{64}$/.test(trimmed) && key.toString("base64") !== trimmed)) {
    throw new PolydevError(
      "invalid_request",
      "POLYDEV_MASTER_KEY must be 32 random bytes, as 64 hex characters or base64 (e.g. `openssl rand -base64 32`)",
    );
  }
  return key;
}

async function writeKeyFile(path: string, file: KeyFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

async function readKeyFile(path: string): Promise<KeyFile> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as KeyFile;
  } catch (error) {
    throw new PolydevError("invalid_request", `the master key file ${path} is unreadable or corrupt`, {
      cause: error,
    });
  }
}

function toKeyring(file: KeyFile): Keyring {
  const keys = new Map(file.keys.map((k) => [k.id, Buffer.from(k.key, "base64")]));
  if (!keys.has(file.current))
    throw new PolydevError("invalid_request", "the master key file names a current key it does not hold");
  return { currentKeyId: file.current, keys };
}

/**
 * The environment key wins (then the file is not touched); otherwise the key file, created
 * with a fresh random key on first start.
 */
export async function loadKeyring(options: {
  envKey?: string | undefined;
  keyFile: string;
}): Promise<Keyring> {
  if (options.envKey) {
    const key = parseMasterKey(options.envKey);
    const id = keyIdOf(key);
    const keys = new Map([[id, key]]);
    // Older keys from the file still open records sealed before the switch to the env key.
    if (existsSync(options.keyFile)) {
      for (const [oldId, oldKey] of toKeyring(await readKeyFile(options.keyFile)).keys)
        keys.set(oldId, oldKey);
    }
    return { currentKeyId: id, keys };
  }
  if (!existsSync(options.keyFile)) {
    const key = randomBytes(32);
    const id = keyIdOf(key);
    await writeKeyFile(options.keyFile, {
      version: 1,
      current: id,
      keys: [{ id, key: key.toString("base64"), createdAt: new Date().toISOString() }],
    });
  }
  return toKeyring(await readKeyFile(options.keyFile));
}

/** Adds a new current key; every old key stays so existing records still open. */
export async function rotateMasterKey(keyFile: string): Promise<string> {
  const file = await readKeyFile(keyFile);
  const key = randomBytes(32);
  const id = keyIdOf(key);
  file.keys.push({ id, key: key.toString("base64"), createdAt: new Date().toISOString() });
  file.current = id;
  await writeKeyFile(keyFile, file);
  return id;
}

/** Drops an old key; refuses while records still use it or when it is the current key. */
export async function retireMasterKey(keyFile: string, keyId: string, recordsUsingIt: number): Promise<void> {
  const file = await readKeyFile(keyFile);
  if (file.current === keyId)
    throw new PolydevError("conflict", "the current master key cannot be retired; rotate first");
  if (recordsUsingIt > 0) {
    throw new PolydevError(
      "conflict",
      `${recordsUsingIt} records still use key ${keyId}; re-wrap them first`,
    );
  }
  file.keys = file.keys.filter((k) => k.id !== keyId);
  await writeKeyFile(keyFile, file);
}
