/**
 * `polydev keys rotate` carries webhook signing secrets and MCP servers' secret values over to
 * the new master key too, so retiring the old key leaves none of them unreadable.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MASTER_KEY_FILE } from "@polydev/server";
import { openSqliteStore } from "@polydev/store";
import { EnvelopeVault, loadKeyring } from "@polydev/vault";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { keys } from "./keys.js";

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "polydev-keys-hooks-"));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("polydev keys rotate with webhooks and MCP servers", () => {
  it("re-wraps their secrets, retires the old key, and they still open", async () => {
    const keyFile = join(dataDir, MASTER_KEY_FILE);
    const load = () => loadKeyring({ keyFile });
    const store = await openSqliteStore({ file: join(dataDir, "polydev.db") });
    try {
      const before = new EnvelopeVault(await load(), load);
      const oldKeyId = before.currentKeyId();
      await store.users.create({ id: "usr_1", name: "one", role: "user", passwordHash: null, createdAt: 1 });
      const webhookOwner = { ownerId: "usr_1", provider: "webhook:whk_1" };
      const mcpOwner = { ownerId: "usr_1", provider: "mcp:mcp_1" };
      await store.webhooks.insert({
        id: "whk_1",
        userId: "usr_1",
        url: "https://example.com/hook",
        events: ["run.finished"],
        sealedSecret: before.seal("whsec_the-secret", webhookOwner),
        createdAt: 1,
      });
      const values = JSON.stringify({ env: { TOKEN: "mcp-value" }, headers: {} });
      await store.mcpServers.insert({
        id: "mcp_1",
        userId: "usr_1",
        name: "probe",
        transport: "stdio",
        command: "node",
        args: [],
        url: null,
        envNames: ["TOKEN"],
        headerNames: [],
        sealed: before.seal(values, mcpOwner),
        createdAt: 1,
      });

      expect(await keys(["rotate", "--data-dir", dataDir], {})).toBe(0);

      const file = JSON.parse(await readFile(keyFile, "utf8")) as { current: string; keys: { id: string }[] };
      expect(file.current).not.toBe(oldKeyId);
      expect(file.keys.map((k) => k.id)).toEqual([file.current]);
      const after = new EnvelopeVault(await load(), load);
      const webhook = await store.webhooks.get("whk_1");
      const [server] = await store.mcpServers.listAll();
      expect(after.keyIdOf(webhook?.sealedSecret ?? "")).toBe(file.current);
      expect(after.open(webhook?.sealedSecret ?? "", webhookOwner)).toBe("whsec_the-secret");
      expect(after.open(server?.sealed ?? "", mcpOwner)).toBe(values);
    } finally {
      await store.close();
    }
  });
});
