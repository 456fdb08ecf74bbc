/**
 * Envelope encryption: each record gets a fresh 256-bit data key that encrypts the secret with
 * AES-256-GCM; the master key wraps the data key, also with AES-256-GCM. Both layers carry
 * associated data naming the owner and provider, so a record copied onto another user or
 * provider fails authentication instead of decrypting.
 *
 * Record: `pv1.<keyId>.<wrapped: iv|key|tag>.<sealed: iv|ciphertext|tag>` (base64url parts).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { inspect } from "node:util";
import type { SecretOwner, Vault } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Keyring } from "./keyring.js";

const FORMAT = "pv1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

function aad(owner: SecretOwner, layer: "data" | "key", keyId: string): Buffer {
  return Buffer.from(JSON.stringify([FORMAT, layer, keyId, owner.ownerId, owner.provider]));
}

function encrypt(key: Buffer, plaintext: Buffer, associated: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(associated);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

function decrypt(key: Buffer, sealed: Buffer, associated: Buffer): Buffer {
  const iv = sealed.subarray(0, IV_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const body = sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", key, iv);
  decipher.setAAD(associated);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(body), decipher.final()]);
}

const unreadable = (): PolydevError =>
  new PolydevError(
    "credential_unreadable",
    "a stored credential cannot be decrypted (it was altered, moved, or its master key is gone); store it again",
  );

interface Parsed {
  keyId: string;
  wrapped: Buffer;
  sealed: Buffer;
}

function parse(record: string): Parsed {
  const [format, keyId, wrapped, sealed] = record.split(".");
  if (format !== FORMAT || !keyId || !wrapped || !sealed) throw unreadable();
  return { keyId, wrapped: Buffer.from(wrapped, "base64url"), sealed: Buffer.from(sealed, "base64url") };
}

export class EnvelopeVault implements Vault {
  // A true private field: util.inspect, console.log and JSON.stringify never reach the key bytes.
  #keyring: Keyring;

  constructor(
    keyring: Keyring,
    /** Re-reads the keys (e.g. after `polydev keys rotate` changed the key file). */
    private readonly reload?: () => Promise<Keyring>,
  ) {
    this.#keyring = keyring;
  }

  [inspect.custom](): string {
    return `EnvelopeVault(current key ${this.#keyring.currentKeyId}, ${this.#keyring.keys.size} key(s))`;
  }

  toJSON(): string {
    return "[EnvelopeVault]";
  }

  currentKeyId(): string {
    return this.#keyring.currentKeyId;
  }

  keyIdOf(sealed: string): string {
    return parse(sealed).keyId;
  }

  /** Picks up keys added by a rotation in another process; call when a key id is unknown. */
  async refresh(): Promise<void> {
    if (this.reload) this.#keyring = await this.reload();
  }

  hasKey(keyId: string): boolean {
    return this.#keyring.keys.has(keyId);
  }

  seal(plaintext: string, owner: SecretOwner): string {
    const keyId = this.#keyring.currentKeyId;
    const master = this.#keyring.keys.get(keyId);
    if (!master) throw new PolydevError("internal", "the current master key is missing");
    const dataKey = randomBytes(32);
    try {
      const sealed = encrypt(dataKey, Buffer.from(plaintext, "utf8"), aad(owner, "data", keyId));
      const wrapped = encrypt(master, dataKey, aad(owner, "key", keyId));
      return [FORMAT, keyId, wrapped.toString("base64url"), sealed.toString("base64url")].join(".");
    } finally {
      dataKey.fill(0);
    }
  }

  open(record: string, owner: SecretOwner): string {
    const { dataKey, sealed, keyId } = this.unwrap(record, owner);
    try {
      return decrypt(dataKey, sealed, aad(owner, "data", keyId)).toString("utf8");
    } catch {
      throw unreadable();
    } finally {
      dataKey.fill(0);
    }
  }

  rewrap(record: string, owner: SecretOwner): string {
    const { dataKey, sealed, keyId } = this.unwrap(record, owner);
    try {
      // Opening the secret layer also proves the record intact before it is carried forward.
      const plaintext = decrypt(dataKey, sealed, aad(owner, "data", keyId));
      const current = this.#keyring.currentKeyId;
      const master = this.#keyring.keys.get(current);
      if (!master) throw new PolydevError("internal", "the current master key is missing");
      const resealed = encrypt(dataKey, plaintext, aad(owner, "data", current));
      plaintext.fill(0);
      const wrapped = encrypt(master, dataKey, aad(owner, "key", current));
      return [FORMAT, current, wrapped.toString("base64url"), resealed.toString("base64url")].join(".");
    } catch (error) {
      if (error instanceof PolydevError) throw error;
      throw unreadable();
    } finally {
      dataKey.fill(0);
    }
  }

  private unwrap(record: string, owner: SecretOwner): { dataKey: Buffer; sealed: Buffer; keyId: string } {
    const { keyId, wrapped, sealed } = parse(record);
    const master = this.#keyring.keys.get(keyId);
    if (!master) throw unreadable();
    try {
      return { dataKey: decrypt(master, wrapped, aad(owner, "key", keyId)), sealed, keyId };
    } catch {
      throw unreadable();
    }
  }
}
