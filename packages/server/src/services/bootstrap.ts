import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Store } from "@polydev/core";
import { hashPassword } from "./passwords.js";
import { createUserWithKey } from "./users.js";

export const ADMIN_KEY_FILE = "admin-api-key";

/**
 * First start: the data directory (700) and an admin whose key is printed once and written to
 * `<dataDir>/admin-api-key` (600), with the dashboard password `presetPassword` if one is given.
 * Later starts change nothing.
 */
export async function bootstrapAdmin(
  store: Store,
  dataDir: string,
  presetKey: string | undefined,
  now: number,
  presetPassword?: string | undefined,
): Promise<{ apiKey: string; keyFile: string } | undefined> {
  if ((await store.users.count()) > 0) return undefined;
  const passwordHash = presetPassword === undefined ? undefined : await hashPassword(presetPassword);
  const { apiKey } = await createUserWithKey(store, "admin", "admin", now, { presetKey, passwordHash });
  const keyFile = join(dataDir, ADMIN_KEY_FILE);
  await writeFile(keyFile, `${apiKey}\n`, { mode: 0o600 });
  await chmod(keyFile, 0o600);
  return { apiKey, keyFile };
}

export async function prepareDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
}
