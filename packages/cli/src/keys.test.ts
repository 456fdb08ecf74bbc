import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialService, MASTER_KEY_FILE } from "@polydev/server";
import { openSqliteStore } from "@polydev/store";
import { EnvelopeVault, loadKeyring } from "@polydev/vault";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { keys } from "./keys.js";

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "polydev-keys-"));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("polydev keys rotate", () => {
  it("re-wraps every credential under a new key, retires the old one, and a running server keeps reading", async () => {
    const keyFile = join(dataDir, MASTER_KEY_FILE);
    const load = () => loadKeyring({ keyFile });
    const store = await openSqliteStore({ file: join(dataDir, "polydev.db") });
    // What a running server holds: a vault loaded before the rotation.
    const runningVault = new EnvelopeVault(await load(), load);
    const service = new CredentialService(
      store,
      runningVault,
      { anthropic: "", openai: "", gemini: "" },
      Date.now,
    );
    await store.users.create({ id: "usr_1", name: "one", role: "user", passwordHash: null, createdAt: 1 });
    await service.putApiKey("usr_1", "anthropic", "sk-ant-secret-value-1");
    const oldKeyId = runningVault.currentKeyId();

    expect(await keys(["rotate", "--data-dir", dataDir], {})).toBe(0);

    const file = JSON.parse(await readFile(keyFile, "utf8")) as { current: string; keys: { id: string }[] };
    expect(file.current).not.toBe(oldKeyId);
    expect(file.keys.map((k) => k.id)).toEqual([file.current]);
    // The running server, which has read nothing since, stores a new credential: it must use the
    // new key, or the next rotation would retire the key it was sealed with.
    await service.putApiKey("usr_1", "openai", "sk-openai-after-rotation");
    expect((await store.credentials.get("usr_1", "openai"))?.keyId).toBe(file.current);
    const record = await store.credentials.get("usr_1", "anthropic");
    expect(record?.keyId).toBe(file.current);
    expect(await service.credentialFor("usr_1", "anthropic")).toEqual({
      kind: "api_key",
      secret: "sk-ant-secret-value-1",
    });
    expect(await keys(["rotate", "--data-dir", dataDir], {})).toBe(0);
    expect(await service.credentialFor("usr_1", "openai")).toEqual({
      kind: "api_key",
      secret: "sk-openai-after-rotation",
    });
    await store.close();
  });

  it("prints help and exits 2 without a subcommand", async () => {
    expect(await keys([], {})).toBe(2);
  });
});
