/** The SDK's API-key and audit calls against a real server. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../server/src/testing/harness.js";
import { Polydev } from "./client.js";
import { ForbiddenError, NotFoundError, UnauthorizedError } from "./errors.js";

let t: TestServer;
let polydev: Polydev;

beforeAll(async () => {
  t = await startTestServer();
  const user = await createUser(t.api, "sdk-keys");
  polydev = new Polydev({ baseUrl: t.url, apiKey: user.key });
}, 60_000);
afterAll(async () => {
  await t?.close();
});

describe("API keys and the audit log through the SDK", () => {
  it("creates, lists and revokes a key; a revoked key raises UnauthorizedError", async () => {
    const expiresAt = new Date(Date.now() + 365 * 86_400_000).toISOString();
    const { key, apiKey } = await polydev.keys.create({ name: "sdk", expiresAt });
    expect(key).toMatchObject({ name: "sdk", expiresAt });
    const withIt = new Polydev({ baseUrl: t.url, apiKey });
    expect((await withIt.me()).name).toBe("sdk-keys");
    expect((await polydev.keys.list()).items.map((k) => k.id)).toContain(key.id);
    await polydev.keys.revoke(key.id);
    await expect(withIt.me()).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(polydev.keys.revoke(key.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it("reads the audit log as admin; a user gets ForbiddenError", async () => {
    const admin = new Polydev({ baseUrl: t.url, apiKey: t.adminKey });
    const { items } = await admin.admin.audit({ action: "api_key.revoke" });
    expect(items[0]).toMatchObject({ action: "api_key.revoke", actorName: "sdk-keys" });
    await expect(polydev.admin.audit()).rejects.toBeInstanceOf(ForbiddenError);
  });
});
