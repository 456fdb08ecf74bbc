import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Store } from "@polydev/core";
import { openSqliteStore } from "@polydev/store";
import { EnvelopeVault, loadKeyring } from "@polydev/vault";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CredentialService } from "./credential-service.js";

let dir: string;
let store: Store;
let tokenServer: Server;
let tokenUrl: string;
const tokenRequests: Record<string, unknown>[] = [];
let refuse = false;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "oauth-refresh-"));
  store = await openSqliteStore({ file: join(dir, "db.sqlite") });
  await store.users.create({ id: "usr_1", name: "one", role: "user", passwordHash: null, createdAt: 1 });
  tokenServer = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      tokenRequests.push(JSON.parse(body) as Record<string, unknown>);
      // Slow enough that concurrent callers overlap.
      setTimeout(() => {
        if (refuse) res.writeHead(400).end('{"error":"invalid_grant"}');
        else
          res
            .writeHead(200, { "content-type": "application/json" })
            .end('{"access_token":"fresh-access","refresh_token":"fresh-refresh","expires_in":3600}');
      }, 50);
    });
  });
  await new Promise<void>((resolve) => tokenServer.listen(0, "127.0.0.1", resolve));
  tokenUrl = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/v1/oauth/token`;
});
afterAll(async () => {
  tokenServer.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function service(): Promise<CredentialService> {
  const keyFile = join(dir, "keys.json");
  return loadKeyring({ keyFile }).then(
    (keys) =>
      new CredentialService(
        store,
        new EnvelopeVault(keys),
        { anthropic: "", openai: "", gemini: "" },
        Date.now,
        {
          anthropic: { tokenUrl, clientId: "client-1", json: true },
        },
      ),
  );
}

const expiredFile = JSON.stringify({
  claudeAiOauth: { accessToken: "old-access", refreshToken: "old-refresh", expiresAt: Date.now() - 1000 },
});

describe("OAuth refresh in the gateway's credential lookup", () => {
  it("refreshes an expiring token once for concurrent callers and stores the new one sealed", async () => {
    const credentials = await service();
    await credentials.putOAuth("usr_1", "anthropic", expiredFile);
    const results = await Promise.all([1, 2, 3].map(() => credentials.credentialFor("usr_1", "anthropic")));
    expect(results.map((r) => r?.secret)).toEqual(["fresh-access", "fresh-access", "fresh-access"]);
    expect(tokenRequests).toEqual([
      { grant_type: "refresh_token", refresh_token: "old-refresh", client_id: "client-1" },
    ]);
    // Stored: the next lookup needs no refresh.
    expect((await credentials.credentialFor("usr_1", "anthropic"))?.secret).toBe("fresh-access");
    expect(tokenRequests).toHaveLength(1);
    const sealed = (await store.credentials.get("usr_1", "anthropic"))?.sealed ?? "";
    expect(sealed).not.toContain("fresh-access");
  });

  it("says to sign in again when the provider refuses the refresh", async () => {
    refuse = true;
    const credentials = await service();
    await credentials.putOAuth("usr_1", "anthropic", expiredFile);
    await expect(credentials.credentialFor("usr_1", "anthropic")).rejects.toMatchObject({
      code: "unauthorized",
      message: expect.stringContaining("sign in again"),
    });
  });
});
