import type { Store, UserRecord, UserRole } from "@polydev/core";
import { displayPrefix, generateApiKey, hashApiKey, newId } from "./api-keys.js";

/** The plaintext key is returned once and never stored. */
export async function createUserWithKey(
  store: Store,
  name: string,
  role: UserRole,
  now: number,
  options: { presetKey?: string | undefined; passwordHash?: string | undefined } = {},
): Promise<{ user: UserRecord; apiKey: string }> {
  const apiKey = options.presetKey ?? generateApiKey();
  const user = await store.users.create({
    id: newId("usr"),
    name,
    role,
    passwordHash: options.passwordHash ?? null,
    createdAt: now,
  });
  await store.apiKeys.create({
    id: newId("key"),
    userId: user.id,
    name: "first key",
    keyHash: hashApiKey(apiKey),
    prefix: displayPrefix(apiKey),
    createdAt: now,
  });
  return { user, apiKey };
}
