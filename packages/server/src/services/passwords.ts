/**
 * Dashboard passwords: scrypt with a per-user random salt, parameters stored beside the hash so
 * they can be raised later without invalidating old hashes.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

const SCHEME = "scrypt";
/** N=2^15, r=8: 32 MiB and tens of milliseconds per guess, the OWASP floor for scrypt. */
const COST = 32_768;
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Headroom over 128·N·r so Node does not refuse the parameters. */
const MAX_MEMORY_BYTES = 64 * 1024 * 1024;

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 200;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      password.normalize("NFKC"),
      salt,
      KEY_BYTES,
      { N: n, r, p, maxmem: MAX_MEMORY_BYTES },
      (error, key) => (error ? reject(error) : resolve(key)),
    );
  });
}

/** `scrypt$N$r$p$<salt>$<key>`, both base64url. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, COST, BLOCK_SIZE, PARALLELISM);
  return [SCHEME, COST, BLOCK_SIZE, PARALLELISM, salt.toString("base64url"), key.toString("base64url")].join(
    "$",
  );
}

/** A valid hash of no one's password, so an unknown user name costs the same time as a wrong password. */
let decoy: Promise<string> | undefined;

/**
 * Constant-time comparison of the derived keys. `stored` null or unreadable (a user with API keys
 * only) still derives once against a decoy, so timing tells an attacker nothing about which names exist.
 */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  decoy ??= hashPassword(randomBytes(16).toString("hex"));
  const parsed = parse(stored ?? "") ?? parse(await decoy);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.n, parsed.r, parsed.p);
  const matches = key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
  return matches && stored !== null && parse(stored) !== undefined;
}

function parse(stored: string): { n: number; r: number; p: number; salt: Buffer; key: Buffer } | undefined {
  const [scheme, n, r, p, salt, key] = stored.split("$");
  if (scheme !== SCHEME || !n || !r || !p || !salt || !key) return undefined;
  const numbers = [Number(n), Number(r), Number(p)] as const;
  if (!numbers.every((x) => Number.isSafeInteger(x) && x > 0)) return undefined;
  return {
    n: numbers[0],
    r: numbers[1],
    p: numbers[2],
    salt: Buffer.from(salt, "base64url"),
    key: Buffer.from(key, "base64url"),
  };
}
