import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EnvelopeVault } from "./envelope-vault.js";
import { loadKeyring, parseMasterKey, retireMasterKey, rotateMasterKey } from "./keyring.js";
import { Secret } from "./secret.js";

let dir: string;
let keyFile: string;
const alice = { ownerId: "usr_alice", provider: "anthropic" };
const SECRET = "sk-ant-api03-THIS-IS-THE-PLAINTEXT";

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vault-"));
  keyFile = join(dir, "keys", "master-keys.json");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function vault(): Promise<EnvelopeVault> {
  return new EnvelopeVault(await loadKeyring({ keyFile }), () => loadKeyring({ keyFile }));
}

/** Flips one byte inside part `index` of a record. */
function tamper(record: string, index: number): string {
  const parts = record.split(".");
  const bytes = Buffer.from(parts[index] ?? "", "base64url");
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 1;
  parts[index] = bytes.toString("base64url");
  return parts.join(".");
}

describe("envelope vault", () => {
  it("round-trips, and the record never contains the plaintext", async () => {
    const v = await vault();
    const sealed = v.seal(SECRET, alice);
    expect(sealed).not.toContain(SECRET);
    expect(Buffer.from(sealed).includes(Buffer.from("THIS-IS-THE"))).toBe(false);
    expect(v.open(sealed, alice)).toBe(SECRET);
    expect(v.seal(SECRET, alice)).not.toBe(sealed);
  });

  it.each([2, 3])("refuses a record whose part %i was altered", async (part) => {
    const v = await vault();
    expect(() => v.open(tamper(v.seal(SECRET, alice), part), alice)).toThrow(
      expect.objectContaining({ code: "credential_unreadable" }),
    );
  });

  it("refuses a record moved to another owner or provider, without revealing anything", async () => {
    const v = await vault();
    const sealed = v.seal(SECRET, alice);
    for (const owner of [
      { ...alice, ownerId: "usr_bob" },
      { ...alice, provider: "openai" },
    ]) {
      let message = "";
      try {
        v.open(sealed, owner);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/cannot be decrypted/);
      expect(message).not.toContain(SECRET);
    }
  });

  it("creates the key file with mode 600 and never writes the plaintext into it", async () => {
    const v = await vault();
    v.seal(SECRET, alice);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(keyFile, "utf8")).not.toContain(SECRET);
  });

  it("rotates without loss: old records open, rewrap moves them, the old key retires only when unused", async () => {
    const before = await vault();
    const old = before.seal(SECRET, alice);
    const oldKey = before.currentKeyId();

    const newKey = await rotateMasterKey(keyFile);
    expect(newKey).not.toBe(oldKey);
    // A running server learns the new key by re-reading the file.
    await before.refresh();
    expect(before.currentKeyId()).toBe(newKey);
    expect(before.open(old, alice)).toBe(SECRET);

    const moved = before.rewrap(old, alice);
    expect(before.keyIdOf(moved)).toBe(newKey);
    expect(before.open(moved, alice)).toBe(SECRET);

    await expect(retireMasterKey(keyFile, oldKey, 1)).rejects.toMatchObject({ code: "conflict" });
    await expect(retireMasterKey(keyFile, newKey, 0)).rejects.toMatchObject({ code: "conflict" });
    await retireMasterKey(keyFile, oldKey, 0);
    const after = await vault();
    expect(after.open(moved, alice)).toBe(SECRET);
    expect(() => after.open(old, alice)).toThrow(expect.objectContaining({ code: "credential_unreadable" }));
  });

  it("takes POLYDEV_MASTER_KEY as hex or base64 and rejects anything else with a clear message", async () => {
    const hex = "a".repeat(64);
    expect(parseMasterKey(hex)).toHaveLength(32);
    expect(parseMasterKey(Buffer.alloc(32, 7).toString("base64"))).toHaveLength(32);
    for (const bad of ["short", "z".repeat(64), Buffer.alloc(16).toString("base64")]) {
      expect(() => parseMasterKey(bad)).toThrow(/32 random bytes/);
    }
    const fromEnv = new EnvelopeVault(await loadKeyring({ envKey: hex, keyFile }));
    expect(fromEnv.open(fromEnv.seal(SECRET, alice), alice)).toBe(SECRET);
  });
});

describe("envelope vault in logs", () => {
  it("never shows its master keys through inspect or JSON", async () => {
    const key = Buffer.alloc(32, 7);
    const vault = new EnvelopeVault(
      await loadKeyring({ envKey: key.toString("hex"), keyFile: join(dir, "k.json") }),
    );
    const shown = `${inspect(vault, { depth: 10, showHidden: true })} ${JSON.stringify({ vault })}`;
    expect(shown).toContain(vault.currentKeyId());
    for (const form of [key.toString("hex"), key.toString("base64"), "7, 7, 7, 7", "07 07 07 07"]) {
      expect(shown).not.toContain(form);
    }
  });
});

describe("key file under concurrency", () => {
  it("gives every process starting on an empty data directory the same key", async () => {
    const keyrings = await Promise.all(Array.from({ length: 20 }, () => loadKeyring({ keyFile })));
    const ids = new Set(keyrings.map((k) => k.currentKeyId));
    expect(ids.size).toBe(1);
    expect((await loadKeyring({ keyFile })).currentKeyId).toBe(keyrings[0]?.currentKeyId);
  });

  it("keeps every key of concurrent rotations", async () => {
    await loadKeyring({ keyFile });
    const ids = await Promise.all(Array.from({ length: 8 }, () => rotateMasterKey(keyFile)));
    const keyring = await loadKeyring({ keyFile });
    expect(keyring.keys.size).toBe(9);
    for (const id of ids) expect(keyring.keys.has(id)).toBe(true);
  });
});

describe("Secret", () => {
  it("does not leak through JSON, strings, templates or inspect", () => {
    const secret = new Secret(SECRET);
    const holder = { apiKey: secret };
    for (const rendering of [
      JSON.stringify(holder),
      String(secret),
      `${secret}`,
      inspect(holder, { depth: 5 }),
    ]) {
      expect(rendering).not.toContain(SECRET);
    }
    expect(secret.reveal()).toBe(SECRET);
  });
});
