import { createHash, randomBytes } from "node:crypto";

const KEY_PREFIX = "pdk_";

/** A new API key: 256 random bits, recognisable by its prefix in logs and secret scanners. */
export function generateApiKey(): string {
  return `${KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
}

/**
 * Keys are random 256-bit tokens, not passwords, so a plain SHA-256 is the right hash: nothing
 * to brute-force, and lookups by hash stay a single indexed query on every request.
 */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** What a user sees to tell keys apart; short enough to reveal nothing. */
export function displayPrefix(key: string): string {
  return key.slice(0, KEY_PREFIX.length + 6);
}

export function newId(kind: "usr" | "key" | "sbx" | "cred" | "ses" | "img" | "whk" | "whd" | "mcp"): string {
  return `${kind}_${randomBytes(12).toString("base64url")}`;
}
