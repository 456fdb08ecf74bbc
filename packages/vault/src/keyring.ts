/**
 * Master keys. One key is current (new records are sealed with it); older keys stay until no
 * record uses them, so rotation never makes a record unreadable. The key file is JSON, mode 600,
 * created on first start when POLYDEV_MASTER_KEY is not set.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, link, mkdir, open, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
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

async function writeTemporary(path: string, file: KeyFile): Promise<string> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600);
  return temporary;
}

async function writeKeyFile(path: string, file: KeyFile): Promise<void> {
  await rename(await writeTemporary(path, file), path);
}

/**
 * Creates the key file only if nobody has: link() fails when the name exists, so two servers
 * starting on an empty data directory at the same moment end up with the same key.
 */
async function createKeyFileOnce(path: string, file: KeyFile): Promise<void> {
  const temporary = await writeTemporary(path, file);
  try {
    await link(temporary, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
}

const LOCK_WAIT_MS = 10_000;
/** A lock older than this was left by a process that died mid-change. */
const STALE_LOCK_MS = 60_000;

/**
 * Serializes read-modify-write changes of the key file across processes (two `keys rotate`
 * runs at once would otherwise drop one of the new keys). An exclusive-create lock file, because
 * Node has no flock and the change is rare and short.
 */
async function withKeyFileLock<T>(path: string, change: () => Promise<T>): Promise<T> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await (await open(lockPath, "wx", 0o600)).close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const age = await stat(lockPath).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) await rm(lockPath, { force: true });
      else if (Date.now() > deadline) {
        throw new PolydevError(
          "conflict",
          `another process is changing ${path} (lock ${lockPath}); try again`,
        );
      } else await delay(5 + Math.random() * 20);
    }
  }
  try {
    return await change();
  } finally {
    await rm(lockPath, { force: true });
  }
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
    await createKeyFileOnce(options.keyFile, {
      version: 1,
      current: id,
      keys: [{ id, key: key.toString("base64"), createdAt: new Date().toISOString() }],
    });
  }
  return toKeyring(await readKeyFile(options.keyFile));
}

/** Adds a new current key; every old key stays so existing records still open. */
export async function rotateMasterKey(keyFile: string): Promise<string> {
  return withKeyFileLock(keyFile, async () => {
    const file = await readKeyFile(keyFile);
    const key = randomBytes(32);
    const id = keyIdOf(key);
    file.keys.push({ id, key: key.toString("base64"), createdAt: new Date().toISOString() });
    file.current = id;
    await writeKeyFile(keyFile, file);
    return id;
  });
}

/** Drops an old key; refuses while records still use it or when it is the current key. */
export async function retireMasterKey(keyFile: string, keyId: string, recordsUsingIt: number): Promise<void> {
  await withKeyFileLock(keyFile, async () => {
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
  });
}
