/**
 * The running-sandbox cache on the exec path must never outlive what it caches: a foreign user
 * is refused even right after the owner's exec, and a destroyed or hibernated sandbox is seen as
 * such by the very next request.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "../testing/harness.js";
import { createUser, startTestServer } from "../testing/harness.js";

let t: TestServer;
let owner: ApiClient;
let stranger: ApiClient;
beforeAll(async () => {
  t = await startTestServer();
  owner = await createUser(t.api, "cache-owner");
  stranger = await createUser(t.api, "cache-stranger");
});
afterAll(async () => {
  await t?.close();
});

describe("running sandbox cache", () => {
  it("answers a stranger 404 while the owner's row is cached", async () => {
    const id = await owner.createSandbox();
    expect((await owner.exec(id, "echo mine")).body.stdout).toBe("mine\n");
    const foreign = await stranger.exec(id, "echo theirs");
    expect(foreign.status).toBe(404);
    expect((await owner.exec(id, "echo still mine")).body.stdout).toBe("still mine\n");
    await owner.call("DELETE", `/v1/sandboxes/${id}`);
  });

  it("refuses a sandbox right after it was destroyed, and resumes one right after hibernation", async () => {
    const id = await owner.createSandbox();
    expect((await owner.exec(id, "echo warm")).status).toBe(200);
    await owner.call("POST", `/v1/sandboxes/${id}/hibernate`);
    expect((await t.server.store.sandboxes.get(id))?.state).toBe("hibernated");
    expect((await owner.exec(id, "echo resumed")).body.stdout).toBe("resumed\n");
    expect((await t.server.store.sandboxes.get(id))?.state).toBe("running");
    await owner.call("DELETE", `/v1/sandboxes/${id}`);
    const gone = await owner.exec(id, "true");
    expect(gone.status).toBe(409);
    expect(gone.body).toMatchObject({ error: { code: "sandbox_not_running" } });
  });
});
